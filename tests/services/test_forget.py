"""forget and unlock services against a real repository on disk."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from amber.engine.retention import Duration, Policy
from amber.errors import AppendOnlyViolation, RepositoryLocked, SnapshotNotFound, UsageError
from amber.repository import Repository, Snapshot, Tree, init_repository, open_repository
from amber.services.forget import ForgetRequest, forget, forget_policy, policy_from
from amber.services.snapshots import SnapshotFilter
from amber.storage import open_backend
from tests.conftest import PASSWORD


def add(repo: Repository, when: str, host: str = "h1", paths: tuple[str, ...] = ("/data",),
        tags: tuple[str, ...] = ()) -> str:  # fmt: skip
    tree_id, _ = repo.save_tree(Tree())
    repo.blobs.flush()
    snap = Snapshot(time=when, tree=tree_id, paths=list(paths), hostname=host, tags=list(tags))
    return repo.save_snapshot(snap)


def on_disk(repo_path: Path) -> set[str]:
    return {p.name for p in (repo_path / "snapshots").iterdir()}


def files_under(repo_path: Path, sub: str) -> set[Path]:
    return {p for p in (repo_path / sub).rglob("*") if p.is_file()}


@pytest.fixture
def week(repo: Repository) -> list[str]:
    """Seven daily snapshots plus a second one on the last day, oldest first."""
    ids = [add(repo, f"2024-05-0{d}T10:00:00+02:00") for d in range(1, 8)]
    ids.append(add(repo, "2024-05-07T18:00:00+02:00"))
    return ids


def test_policy_removes_only_snapshot_files(repo: Repository, repo_path: Path, week: list[str]) -> None:
    packs = files_under(repo_path, "data")
    index = files_under(repo_path, "index")
    result = forget(repo, ForgetRequest(Policy(keep_daily=3)))
    expected_removed = {week[0], week[1], week[2], week[3], week[6]}
    assert set(result.removed) == expected_removed
    assert on_disk(repo_path) == set(week) - expected_removed
    assert files_under(repo_path, "data") == packs and files_under(repo_path, "index") == index
    [group] = result.groups
    assert group.reasons[week[7]] == ["daily snapshot"]
    assert not list((repo_path / "locks").iterdir())  # the lock was released


def test_dry_run_removes_nothing(repo: Repository, repo_path: Path, week: list[str]) -> None:
    result = forget(repo, ForgetRequest(Policy(keep_last=2), dry_run=True))
    assert result.removed == [] and len(result.to_remove) == 6
    assert on_disk(repo_path) == set(week)


def test_empty_policy_is_refused(repo: Repository, repo_path: Path, week: list[str]) -> None:
    with pytest.raises(UsageError, match="no policy"):
        forget(repo, ForgetRequest(Policy(keep_within=Duration())))
    assert on_disk(repo_path) == set(week)


def test_explicit_ids(repo: Repository, repo_path: Path, week: list[str]) -> None:
    result = forget(repo, ForgetRequest(snapshot_ids=[week[0][:10], week[3]]))
    assert result.removed == [week[0], week[3]]
    assert on_disk(repo_path) == set(week) - {week[0], week[3]}
    with pytest.raises(SnapshotNotFound):
        forget(repo, ForgetRequest(snapshot_ids=[week[0]]))
    with pytest.raises(UsageError, match="not both"):
        forget(repo, ForgetRequest(Policy(keep_last=1), snapshot_ids=[week[1]]))
    assert on_disk(repo_path) == set(week) - {week[0], week[3]}


def test_groups_and_filters(repo: Repository, repo_path: Path) -> None:
    a1 = add(repo, "2024-05-01T10:00:00+00:00", "h1")
    a2 = add(repo, "2024-05-02T10:00:00+00:00", "h1")
    b1 = add(repo, "2024-05-01T11:00:00+00:00", "h2")
    b2 = add(repo, "2024-05-02T11:00:00+00:00", "h2")
    c1 = add(repo, "2024-05-01T12:00:00+00:00", "h1", ("/other",))
    # filters: only h2 is considered
    result = forget(repo, ForgetRequest(Policy(keep_last=1), filter=SnapshotFilter(hosts=["h2"])))
    assert result.removed == [b1]
    # default grouping (host, paths): the newest of each group survives
    result = forget(repo, ForgetRequest(Policy(keep_last=1)))
    assert result.removed == [a1]
    assert on_disk(repo_path) == {a2, b2, c1}
    # one group for everything
    result = forget(repo, ForgetRequest(Policy(keep_last=1), group_by=()))
    assert on_disk(repo_path) == {b2} and set(result.removed) == {a2, c1}


def test_damaged_snapshot_is_left_alone(repo: Repository, repo_path: Path, week: list[str]) -> None:
    bad = repo_path / "snapshots" / week[0]
    bad.write_bytes(b"garbage")
    result = forget(repo, ForgetRequest(Policy(keep_last=1)))
    assert [sid for sid, _ in result.damaged] == [week[0]]
    assert on_disk(repo_path) == {week[0], week[7]}
    # by ID it can be removed
    assert forget(repo, ForgetRequest(snapshot_ids=[week[0]])).removed == [week[0]]


def test_concurrently_removed_is_fine(repo: Repository, repo_path: Path, week: list[str]) -> None:
    def steal(_: str) -> None:  # another forget removes the next candidate first
        for sid in (week[4], week[5]):
            (repo_path / "snapshots" / sid).unlink(missing_ok=True)

    result = forget(repo, ForgetRequest(snapshot_ids=[week[3], week[4], week[5]]), on_removed=steal)
    assert result.removed == [week[3]] and result.vanished == [week[4], week[5]]


def test_forget_beside_backups_not_exclusive(repo: Repository, week: list[str]) -> None:
    other = open_repository(open_backend(repo.backend.location), PASSWORD.encode())
    try:
        with other.lock(exclusive=False):  # a backup in progress
            assert len(forget(repo, ForgetRequest(Policy(keep_last=6))).removed) == 2
        with other.lock(exclusive=True), pytest.raises(RepositoryLocked):
            forget(repo, ForgetRequest(Policy(keep_last=1)))
    finally:
        other.close()


def test_future_snapshot_does_not_expire_the_rest(repo: Repository, repo_path: Path) -> None:
    future = add(repo, "2099-01-01T00:00:00+00:00")  # a client with a broken clock
    recent = add(repo, (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat())
    old = add(repo, "2020-01-01T00:00:00+00:00")
    result = forget(repo, ForgetRequest(Policy(keep_within=Duration(days=7))))
    assert result.removed == [old] and on_disk(repo_path) == {future, recent}


def test_append_only_repository_refuses_forget(repo_path: Path) -> None:
    init_repository(open_backend(str(repo_path)), PASSWORD.encode(), append_only=True).close()
    repo = open_repository(open_backend(str(repo_path)), PASSWORD.encode())
    try:
        ids = [add(repo, f"2024-05-0{d}T10:00:00+00:00") for d in (1, 2)]
        with pytest.raises(AppendOnlyViolation, match="forget is refused"):
            forget(repo, ForgetRequest(Policy(keep_last=1)))
        with pytest.raises(AppendOnlyViolation):
            forget(repo, ForgetRequest(snapshot_ids=[ids[0]]))
        assert on_disk(repo_path) == set(ids)
        preview = forget(repo, ForgetRequest(Policy(keep_last=1), dry_run=True))  # looking is allowed
        assert [s.id for s in preview.to_remove] == [ids[0]]
    finally:
        repo.close()


def test_forget_policy_for_run_jobs_under_a_held_lock(repo: Repository, repo_path: Path) -> None:
    from amber.ops.config.model import RetentionConfig

    job = [add(repo, f"2024-05-0{d}T10:00:00+00:00", "h1", tags=("job",)) for d in (1, 2, 3)]
    untagged = add(repo, "2024-05-01T09:00:00+00:00", "h1")
    other_host = add(repo, "2024-05-01T08:00:00+00:00", "h2", tags=("job",))
    policy = RetentionConfig(name="weekly", keep_last=1, keep_within="1w")
    assert policy_from(policy) == Policy(keep_last=1, keep_within=Duration(days=7))
    with repo.lock(exclusive=True):  # amber run holds the lock; forget works under it
        removed = forget_policy(repo, RetentionConfig(name="r", keep_last=1), host="h1", tags=["job"])
    assert set(removed) == {job[0], job[1]}
    assert on_disk(repo_path) == {job[2], untagged, other_host}
