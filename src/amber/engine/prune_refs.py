"""What the snapshots reference, marked in the index itself; and rescue of needed packs.

Walking sets the index's per-entry "used" bit, so the referenced set costs no
memory beyond the index. A shared subtree is walked once: its tree blob is
already marked the second time. Blob IDs that a snapshot references but the
index does not hold are collected in ``missing``; a pack that holds one of them
(pending deletion, or left unindexed) can be re-indexed: that is a rescue.
"""

from __future__ import annotations

from amber.errors import IntegrityError, ObjectNotFound
from amber.repository import Repository
from amber.repository.walstore import WalStore


class References:
    def __init__(self, repo: Repository, wal_dropped: frozenset[str] = frozenset()) -> None:
        self._repo = repo
        self._wal_dropped = wal_dropped  # records a dry run counts as expired
        self.walked: set[str] = set()  # snapshot IDs whose trees are marked
        self.wal_records: set[str] = set()  # WAL records (design §12d) whose blobs are marked
        self.missing: set[bytes] = set()  # referenced, not in the index
        self._missing_trees: set[bytes] = set()

    def reset(self) -> None:
        self._repo.blobs.index.clear_used()
        self.walked.clear()
        self.wal_records.clear()
        self.missing.clear()
        self._missing_trees.clear()

    def walk_new(self) -> int:
        """Mark everything the snapshots not walked yet reference. Returns how many were walked.

        A snapshot that cannot be read stops prune: its blobs would look unused.
        A snapshot that vanished (a concurrent forget) is simply gone.
        """
        count = 0
        for name in self._repo.snapshot_names():
            if name in self.walked:
                continue
            try:
                snap = self._repo.load_snapshot(name)
            except ObjectNotFound:
                continue
            except IntegrityError as exc:
                raise IntegrityError(
                    f"snapshot {name[:8]} cannot be read ({exc}); prune would not know what it "
                    "references: run check, then remove or repair it"
                ) from exc
            self.walked.add(name)
            self._walk(snap.tree)
            count += 1
        return count + self._walk_wal()

    def _walk_wal(self) -> int:
        """Mark the data blobs of the WAL records not walked yet: a push writes its record after
        its blobs, so a record seen here names blobs that are indexed, or in packs to rescue."""
        if self._repo.config.version < 2:
            return 0
        index = self._repo.blobs.index
        count = 0
        for name, blobs in WalStore(self._repo).records():
            if name in self.wal_records or name in self._wal_dropped:
                continue
            if isinstance(blobs, IntegrityError):
                raise IntegrityError(
                    f"wal/{name} cannot be read ({blobs.message}); prune would not know what it "
                    "references: run check, then remove it"
                )
            self.wal_records.add(name)
            count += 1
            for blob_id in blobs:
                if index.mark_used(blob_id) is None:
                    self.missing.add(blob_id)
        return count

    def _walk(self, root: bytes) -> None:
        index = self._repo.blobs.index
        stack = [root]
        first = index.mark_used(root)
        if first is None:
            self._missing_tree(root)
            return
        if first is False:
            return
        while stack:
            tree_id = stack.pop()
            try:
                nodes = self._repo.load_tree(tree_id).nodes
            except (IntegrityError, ObjectNotFound) as exc:
                raise IntegrityError(
                    f"tree {tree_id.hex()[:16]} cannot be read ({exc}); run check before prune"
                ) from exc
            for node in nodes:
                for blob_id in node.content:
                    if index.mark_used(blob_id) is None:
                        self.missing.add(blob_id)
                if node.subtree:
                    marked = index.mark_used(node.subtree)
                    if marked:
                        stack.append(node.subtree)
                    elif marked is None:
                        self._missing_tree(node.subtree)

    def resolve_missing(self) -> None:
        """Look up what is missing once more, after the index grew (index files written since it
        was loaded); a tree found now is walked, which may find more that is missing."""
        index = self._repo.blobs.index
        missing, trees = set(self.missing), set(self._missing_trees)
        self.missing.clear()
        self._missing_trees.clear()
        for blob_id in sorted(missing):
            if blob_id in trees:
                self._walk(blob_id)  # marks and walks it, or records it missing again
            elif index.mark_used(blob_id) is None:
                self.missing.add(blob_id)

    def _missing_tree(self, tree_id: bytes) -> None:
        self.missing.add(tree_id)
        self._missing_trees.add(tree_id)

    def rescue(self, candidates: dict[str, int]) -> list[str]:
        """Re-index candidate packs (name -> size) that hold missing blobs; walk rescued trees.

        Reads only the headers of the candidates, and only while blobs are missing.
        A rescued tree can reveal more missing blobs, so passes repeat while they help.
        """
        rescued: list[str] = []
        blobs = self._repo.blobs
        remaining = dict(candidates)
        progress = True
        while self.missing and remaining and progress:
            progress = False
            for pack in sorted(remaining):
                if not self.missing:
                    break
                try:
                    header = blobs.read_pack_header(pack, remaining[pack])
                except (IntegrityError, ObjectNotFound):
                    del remaining[pack]
                    continue
                needed = {b.id for b in header} & self.missing
                if not needed:
                    continue
                del remaining[pack]
                blobs.save_index_file({pack: header})
                rescued.append(pack)
                progress = True
                self.missing -= needed
                for blob_id in needed:
                    if blob_id in self._missing_trees:
                        self._missing_trees.discard(blob_id)
                        self._walk(blob_id)
                    else:
                        blobs.index.mark_used(blob_id)
        return rescued
