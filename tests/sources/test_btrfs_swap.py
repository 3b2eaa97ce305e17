"""The Btrfs rollback swap is all or none, on a real Btrfs filesystem (loop device).

Every command and rename is real; only where a real failure cannot be
arranged between two steps of one swap does the runner make one `btrfs
subvolume snapshot` fail (and maybe leave a name in the way first), as a full
disk or a crashed command would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from amber.errors import LocalSnapshotError
from amber.sources.btrfs import BtrfsProvider
from amber.sources.model import Volume, VolumeSnapshot
from amber.sources.rollback import SwapPlan, plan_swap, swap
from amber.sources.runner import Completed, SystemRunner
from tests.btrfs_fs import needs_btrfs, sh, subvolume

pytestmark = needs_btrfs

PRE = "amber-home-pre-rollback-20260101T000000.000Z"
RUN = "amber-home-20260101T000000.000Z"
NO_SPACE = "btrfs subvolume snapshot failed (exit 1): ERROR: cannot snapshot: No space left on device"


class SnapshotFails:
    """Runs every command for real, but the writable snapshot into ``target`` fails (after ``first``)."""

    def __init__(self, target: Path, first: Callable[[], object] = lambda: None) -> None:
        self.target, self.first = str(target), first
        self.real = SystemRunner()

    def __call__(self, argv: Sequence[str]) -> Completed:
        if list(argv[:3]) == ["btrfs", "subvolume", "snapshot"] and argv[-1] == self.target:
            self.first()
            return Completed(1, "", "ERROR: cannot snapshot: No space left on device")
        return self.real(argv)


def identity(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry's content, device (one per subvolume) and inode: the same subvolumes, not copies."""
    entries = [root, *sorted(root.rglob("*"))]
    return {str(p.relative_to(root)): (p.read_text() if p.is_file() else "", *ids(p)) for p in entries}


def ids(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_dev, st.st_ino


def subvolume_ids(mnt: Path) -> set[tuple[str, str]]:
    out = sh("btrfs", "subvolume", "list", str(mnt))
    return {(m[1], m[2]) for m in re.finditer(r"^ID (\d+) .* path (.*)$", out, re.M)}


def volume(path: Path, mnt: Path) -> Volume:
    return Volume("btrfs", str(path), str(path), str(mnt), str(mnt))


def two_volumes(btrfs: Path) -> tuple[Path, Path, list[VolumeSnapshot]]:
    """Top subvolumes a (with a nested one) and b, each snapshotted read-only, then changed."""
    a, b = subvolume(btrfs / "a"), subvolume(btrfs / "b")
    subvolume(a / "inner")
    (a / "inner" / "n.txt").write_text("nested")
    provider, snapdir = BtrfsProvider(), str(btrfs / ".amber-snapshots")
    for vol in (a, a / "inner", b):
        (vol / "f.txt").write_text("snapshotted")
    targets = [provider.create(volume(v, btrfs), RUN, snapdir) for v in (a, a / "inner", b)]
    for vol in (a, a / "inner", b):
        (vol / "f.txt").write_text("live, later")
    return a, b, targets


def plan(
    btrfs: Path, targets: list[VolumeSnapshot], writable: Callable[[VolumeSnapshot], bool] = lambda _s: False
) -> SwapPlan:
    pre_dir = str(btrfs / ".amber-snapshots" / PRE)
    return plan_swap(targets, lambda _s: pre_dir, set(), writable)


def pre(btrfs: Path, live: Path) -> Path:
    return btrfs / ".amber-snapshots" / PRE / str(live).replace("/", "%2F")


def test_the_second_volume_failing_puts_the_first_back(btrfs: Path) -> None:
    a, b, targets = two_volumes(btrfs)
    before, subvolumes = identity(btrfs / "a") | identity(b), subvolume_ids(btrfs)
    with pytest.raises(LocalSnapshotError) as failed:
        swap(BtrfsProvider(SnapshotFails(b)), plan(btrfs, targets))
    assert failed.value.message == (
        f"rollback of {b} failed: {NO_SPACE}; the live state is unchanged ({a}, {b} put back)"
    )
    assert identity(a) | identity(b) == before and subvolume_ids(btrfs) == subvolumes  # no writable copy left
    assert sorted(os.listdir(btrfs / ".amber-snapshots")) == [RUN]  # the pre-rollback directory is gone
    swap(BtrfsProvider(), plan(btrfs, targets))  # a later rollback still works
    assert [(v / "f.txt").read_text() for v in (a, a / "inner", b)] == ["snapshotted"] * 3
    assert (
        (pre(btrfs, a) / "f.txt").read_text()
        == (pre(btrfs, a) / "inner" / "f.txt").read_text()
        == "live, later"
    )
    assert (a / "inner").lstat().st_ino == 256 and ids(a / "inner")[0] != ids(a)[0]


def test_a_nested_volume_failing_puts_its_placeholder_back_as_it_was(btrfs: Path) -> None:
    a, _b, targets = two_volumes(btrfs)
    writable = subvolume(btrfs / "restored")  # a writable target, as --from-repo makes
    (writable / "f.txt").write_text("restored")
    placeholder = writable / "inner"
    placeholder.mkdir(mode=0o750)
    os.chown(placeholder, 1234, 5678)
    os.utime(placeholder, (1_000_000_000, 1_000_000_000))
    as_placed = placeholder.lstat()
    fresh = VolumeSnapshot(RUN, targets[0].volume, str(writable), str(writable))
    before, subvolumes = identity(a), subvolume_ids(btrfs)
    failing = BtrfsProvider(SnapshotFails(a / "inner"))
    with pytest.raises(LocalSnapshotError) as failed:
        swap(failing, plan(btrfs, [fresh, targets[1]], lambda s: s is fresh))
    assert failed.value.message == (
        f"rollback of {a / 'inner'} failed: {NO_SPACE}; the live state is unchanged ({a} put back)"
    )
    assert identity(a) == before and subvolume_ids(btrfs) == subvolumes
    assert (writable / "f.txt").read_text() == "restored"  # the writable target is back where it was
    again = placeholder.lstat()
    assert (again.st_mode, again.st_uid, again.st_gid, again.st_mtime_ns) == (
        as_placed.st_mode, as_placed.st_uid, as_placed.st_gid, as_placed.st_mtime_ns
    )  # fmt: skip


def test_an_undo_that_fails_says_where_each_previous_state_is(btrfs: Path) -> None:
    a, b, targets = two_volumes(btrfs)
    before_a, before_b = identity(a), identity(b)
    in_the_way = lambda: b.write_text("a half-made snapshot")  # noqa: E731
    with pytest.raises(LocalSnapshotError) as failed:
        swap(BtrfsProvider(SnapshotFails(b, in_the_way)), plan(btrfs, targets))
    pre_b = pre(btrfs, b)
    assert failed.value.message.endswith(
        f"; putting it back failed too (File exists ({b})), so the previous state of {b} is at {pre_b}; "
        f"{a} put back as before"
    )
    assert identity(a) == before_a
    assert identity(pre_b) == before_b  # nothing lost: the same subvolume, only moved
    assert b.read_text() == "a half-made snapshot"


def test_a_name_in_the_way_of_a_nested_target_fails_before_btrfs_snapshots_into_it(btrfs: Path) -> None:
    a, _b, targets = two_volumes(btrfs)
    writable = subvolume(btrfs / "restored")
    (writable / "inner" / "more").mkdir(parents=True)  # not an empty placeholder
    fresh = VolumeSnapshot(RUN, targets[0].volume, str(writable), str(writable))
    before, restored = identity(a), identity(writable)
    with pytest.raises(LocalSnapshotError) as failed:
        swap(BtrfsProvider(), plan(btrfs, [fresh, targets[1]], lambda s: s is fresh))
    assert failed.value.message == (
        f"rollback of {a / 'inner'} failed: File exists ({a / 'inner'}); "
        f"the live state is unchanged ({a} put back)"
    )
    assert identity(a) == before and identity(writable) == restored


def test_an_interrupted_swap_is_put_back_too(btrfs: Path) -> None:
    a, b, targets = two_volumes(btrfs)
    before, subvolumes = identity(a) | identity(b), subvolume_ids(btrfs)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(LocalSnapshotError) as failed:
        swap(BtrfsProvider(SnapshotFails(b, interrupt)), plan(btrfs, targets))
    assert failed.value.message == (
        f"rollback of {b} interrupted (KeyboardInterrupt); the live state is unchanged ({a}, {b} put back)"
    )
    assert identity(a) | identity(b) == before and subvolume_ids(btrfs) == subvolumes
