"""Prune planning: which packs to keep, repack, delete. Pure, no I/O.

Input is what the index says about each pack (all blobs, and the blobs that a
snapshot references), the sizes of the stored packs, and the packs already
pending deletion. Output is a :class:`PrunePlan`. The rules (design §13a):

* an indexed pack with no used blob is deleted;
* partly used packs are repacked, most wasteful first, until the unused bytes
  left are within ``max_unused`` (like restic: a percentage of the used bytes
  after prune, an absolute size, or unlimited) -- never beyond
  ``max_repack_size`` bytes of packs read;
* with ``recompress``, every other used data pack is a repack candidate too
  (within ``max_repack_size``), so it is rewritten at the new zstd level;
* packs in ``must_go`` (they hold blobs a purge erases) are repacked whatever
  the thresholds and the size budget, so no unused copy of those blobs stays;
* a stored pack that no index lists and no marker holds is marked for deletion
  (leftover of an interrupted backup or prune; a running backup's unindexed
  pack is protected by phase 2's lock rule, not here);
* an indexed pack missing from storage is dropped from the index if no used
  blob lives in it; if one does, that is damage the plan reports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from amber.errors import UsageError

DATA, TREE = 0, 1


@dataclass(frozen=True)
class PackStat:
    blobs: int
    bytes: int  # sum of sealed blob lengths
    used_blobs: int
    used_bytes: int
    type: int = DATA

    @property
    def unused_bytes(self) -> int:
        return self.bytes - self.used_bytes


@dataclass(frozen=True)
class PlanOptions:
    max_unused: float | None = 5.0  # percent; None: see max_unused_bytes
    max_unused_bytes: int | None = None  # absolute; both None: unlimited
    max_repack_size: int | None = None
    recompress: bool = False
    must_go: frozenset[str] = frozenset()  # packs to delete or repack whatever the limits (purge)


@dataclass
class Tally:
    packs: int = 0
    blobs: int = 0
    bytes: int = 0

    def add(self, blobs: int, size: int) -> None:
        self.packs += 1
        self.blobs += blobs
        self.bytes += size


@dataclass
class PrunePlan:
    delete: list[str] = field(default_factory=list)  # indexed, nothing used
    repack: list[str] = field(default_factory=list)  # used blobs copied, then deleted
    unindexed: list[str] = field(default_factory=list)  # stored, in no index and no marker
    drop_missing: list[str] = field(default_factory=list)  # indexed, not stored, nothing used
    damaged_missing: list[str] = field(default_factory=list)  # indexed, not stored, used blobs
    keep: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    repacked: Tally = field(default_factory=Tally)  # packs read; blobs/bytes: used ones copied
    unused_after: int = 0  # unused bytes left in kept packs

    @property
    def doomed(self) -> list[str]:
        """Every pack that phase 1 marks for deletion."""
        return [*self.delete, *self.repack, *self.unindexed]

    @property
    def changes_index(self) -> bool:
        return bool(self.delete or self.repack or self.drop_missing)


def plan_prune(
    usage: Mapping[str, PackStat], stored: Mapping[str, int], pending: set[str], opts: PlanOptions
) -> PrunePlan:
    plan = PrunePlan()
    partly: list[tuple[str, PackStat]] = []
    full: list[tuple[str, PackStat]] = []
    for pack in sorted(usage):
        st = usage[pack]
        if pack not in stored:
            (plan.damaged_missing if st.used_blobs else plan.drop_missing).append(pack)
        elif st.used_blobs == 0:
            plan.delete.append(pack)
            plan.deleted.add(st.blobs, stored[pack])
        elif st.used_bytes < st.bytes:
            partly.append((pack, st))
        else:
            full.append((pack, st))
    for pack in sorted(stored.keys() - usage.keys() - pending):
        plan.unindexed.append(pack)
        plan.deleted.add(0, stored[pack])

    used_total = sum(st.used_bytes for _, st in partly + full)
    unused = sum(st.unused_bytes for _, st in partly)
    allowed = _allowed_unused(used_total, opts)
    budget = math.inf if opts.max_repack_size is None else opts.max_repack_size
    chosen: set[str] = set()
    for pack, st in partly:
        if pack in opts.must_go:
            budget -= stored[pack]
            unused -= st.unused_bytes
            chosen.add(pack)
    # most wasteful first; ties broken by name so the plan is deterministic
    for pack, st in sorted(partly, key=lambda p: (p[1].used_bytes / p[1].bytes, p[0])):
        if unused <= allowed:
            break
        if pack in chosen or stored[pack] > budget:
            continue
        budget -= stored[pack]
        unused -= st.unused_bytes
        chosen.add(pack)
    if opts.recompress:
        for pack, st in sorted(partly + full, key=lambda p: p[0]):
            if pack in chosen or st.type != DATA or stored[pack] > budget:
                continue
            budget -= stored[pack]
            unused -= st.unused_bytes
            chosen.add(pack)
    for pack, st in partly + full:
        if pack in chosen:
            plan.repack.append(pack)
            plan.repacked.add(st.used_blobs, st.used_bytes)
        else:
            plan.keep.add(st.blobs, stored[pack])
            plan.unused_after += st.unused_bytes
    plan.repack.sort()
    return plan


def _allowed_unused(used_total: int, opts: PlanOptions) -> float:
    if opts.max_unused is not None:
        if opts.max_unused >= 100:
            return math.inf
        return used_total * opts.max_unused / (100 - opts.max_unused)
    if opts.max_unused_bytes is not None:
        return opts.max_unused_bytes
    return math.inf


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``500``, ``64k``, ``1.5G``, ``2TiB`` -> bytes (powers of 1024, as restic)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"bad size {text!r}: use a number with an optional k, M, G or T suffix")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_max_unused(text: str) -> PlanOptions:
    """``5%``, an absolute size, or ``unlimited`` -> the max_unused fields of PlanOptions."""
    spec = text.strip().lower()
    if spec == "unlimited":
        return PlanOptions(max_unused=None, max_unused_bytes=None)
    if spec.endswith("%"):
        try:
            pct = float(spec[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct <= 100:
            raise UsageError(f"bad --max-unused {text!r}: a percentage must be between 0 and 100")
        return PlanOptions(max_unused=pct)
    return PlanOptions(max_unused=None, max_unused_bytes=parse_size(text))
