"""Checking archived PostgreSQL WAL (run by ``check`` and ``pg check``; design §12d).

Every object's name is amber's, every record authenticates and its blobs are
indexed, each base backup's record is usable and its WAL range complete; with
``read_data`` every WAL file is also read back and its digest compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amber.errors import IntegrityError, ObjectNotFound
from amber.repository import Repository
from amber.repository.walstore import WalStore, is_record, wal_object
from amber.services import walnames
from amber.services.wal import BaseInfo, archived, gaps, scan_base_backups


@dataclass
class WalCheck:
    objects: int = 0
    read: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_wal(repo: Repository, read_data: bool = False) -> WalCheck:
    """Names are amber's, every record authenticates and its blobs are indexed, and each base
    backup's WAL range is complete; with ``read_data`` every WAL file is also read (a record's
    blobs), authenticated, decompressed, and its digest compared."""
    report = WalCheck()
    if repo.config.version < 2:
        return report
    store = WalStore(repo)
    listing = list(store.list())
    report.objects = len(listing)
    if any(is_record(fi.name) for fi in listing):
        repo.ensure_index()
    for fi in listing:
        if walnames.split_object_name(wal_object(fi.name)) is None:
            report.warnings.append(f"wal/{fi.name}: not a WAL object amber writes (ignored)")
            continue
        repo.cancel.check()
        try:
            if read_data:
                store.read(fi.name, store.load_sealed(fi.name, fi.size))
                report.read += 1
            elif is_record(fi.name):
                unindexed = [b for b in store.blob_ids(fi.name, fi.size) if b not in repo.blobs.index]
                if unindexed:
                    report.errors.append(f"wal/{fi.name}: {len(unindexed)} of its blobs are not "
                                         f"in the index, first {unindexed[0].hex()[:16]}")  # fmt: skip
        except (IntegrityError, ObjectNotFound) as exc:
            report.errors.append(f"wal/{fi.name}: {exc.message}")
    if not listing:
        return report
    wal = archived(repo)
    scan = scan_base_backups(repo)  # a damaged snapshot is the snapshot check's to report
    bases = scan.found
    report.errors += [f"base backup {bad}: it cannot be restored" for bad in scan.bad_records]
    for cluster, entry in sorted(wal.items()):
        mine = [b for b in bases if b.info.cluster == cluster]
        have = {n.position for n in entry.names}
        for base in mine:
            needed = _range(base.info)
            absent = [p for p in needed if p not in have]
            if absent:
                report.errors.append(
                    f"base backup {base.snapshot_id[:8]} (cluster {cluster}) lacks WAL "
                    f"segment(s) {', '.join(absent[:3])}: it cannot be restored"
                )
        missing = gaps(entry, mine)
        if missing:
            report.warnings.append(
                f"cluster {cluster}: {len(missing)} WAL segment(s) missing after the oldest "
                f"base backup, first {missing[0]}: recovery stops there"
            )
    return report


def _range(info: BaseInfo) -> list[str]:
    """Segment positions from a base backup's start to its stop (the WAL it cannot do without)."""
    pos = walnames.segment_position(walnames.parse_lsn(info.start_lsn), info.segment_size)
    stop = walnames.segment_position(walnames.parse_lsn(info.stop_lsn), info.segment_size)
    out = [pos]
    while pos < stop:
        pos = walnames.next_position(pos, info.segment_size)
        out.append(pos)
    return out
