"""A watcher keeps its repositories open between runs (ops/watch/kept.py); what other processes do
meanwhile (a prune, another host's backup) is seen by the next run, through `amber run`'s pipeline.

The runs are watched runs as the watcher makes them: `run_jobs` with the kept repositories, the
previous snapshot as parent and the changed paths as marks. The prunes are real `amber prune`
processes; a lock held by this process stands for another host's backup still running.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from amber.engine.changedpaths import ChangedPaths
from amber.events import Subscriber
from amber.ops.run import job as run_service
from amber.ops.state import StateDB
from amber.ops.watch.kept import KeptRepositories
from amber.services import browse, session
from amber.services import check as check_service
from amber.services.backup import BackupRequest, backup_paths
from amber.storage import open_backend
from amber.storage.base import FileType
from tests.conftest import AmberCli
from tests.ops.test_run import Notes, load, make_config, noted, snapshot_count


class _Watcher:
    """Watched runs of job ``home``, each from the previous snapshot with the given marks."""

    def __init__(self, tmp: Path, mirrors: str = "[]") -> None:
        self.tmp = tmp
        self.cfg = load(make_config(tmp, mirrors=mirrors))
        self.kept = KeptRepositories()
        self.notes = Notes()
        self.parent: str | None = None

    def run(self, *changed: Path, subscriber: Subscriber | None = None) -> run_service.JobResult:
        marks = ChangedPaths()
        for path in changed:
            marks.add(os.fsencode(path))
        options = noted(self.notes, check=False, repositories=self.kept,
                        changes=marks if self.parent else None, parent=self.parent)  # fmt: skip
        if subscriber is not None:
            options.context.events.subscribe(subscriber)
        [result] = run_service.run_jobs(self.cfg, ["home"], options)
        ok = result.status == "success" and result.record is not None
        self.parent = result.record.snapshot_ids[0] if ok and result.record is not None else None
        return result

    def passwords(self) -> session.PasswordSource:
        return session.PasswordSource(password_file=str(self.tmp / "pass"))


def _packs(repo: Path) -> set[str]:
    return {fi.name for fi in open_backend(str(repo)).list(FileType.PACK)}


class _PruneWhenStored(Subscriber):
    """Runs `amber prune` in another process as soon as the watched run has stored ``path``:
    after the run locked and deduplicated, before it writes its snapshot."""

    def __init__(self, cli: AmberCli, path: Path) -> None:
        self.cli, self.path, self.ran = cli, os.fsencode(path), False

    def file_done(self, path: bytes, size: int, status: str) -> None:
        if path == self.path and not self.ran:
            self.ran = True
            self.cli.run("prune", "--max-unused", "0%")


@pytest.mark.slow
def test_a_prune_between_two_watched_runs_never_leaves_the_next_snapshot_on_deleted_data(
    tmp_path: Path,
) -> None:
    """Between two runs a prune dooms the only pack holding a blob; deleting it waits for another
    backup's lock. The next run stores a file with that blob again, and a second prune deletes the
    pack during that run. A run trusting its kept index would deduplicate against the doomed pack
    and commit a snapshot on deleted data: after locking it must see that index files it loaded
    are gone and reload (§13)."""
    w = _Watcher(tmp_path)
    src, main = tmp_path / "src", tmp_path / "main"
    doomed = src / "sub" / "doomed.bin"
    content = os.urandom(200_000)
    doomed.write_bytes(content)
    cli = AmberCli(main, tmp_path)
    first = w.run()
    assert first.status == "success" and first.record is not None, w.notes.lines
    packs_first = _packs(main)

    doomed.unlink()
    assert w.run(src / "sub", doomed).status == "success"
    (main / "snapshots" / first.record.snapshot_ids[0]).unlink()  # forget the only snapshot holding it
    with session.opened(str(main), w.passwords()):  # another backup, still running at the mark
        cli.run("prune", "--max-unused", "0%")  # marks the packs; deleting them waits for that holder
    assert packs_first <= _packs(main), "the first prune deleted packs while a lock holder was live"

    doomed.write_bytes(content)  # the same content again: its blob is only in a doomed pack
    pruner = _PruneWhenStored(cli, doomed)
    third = w.run(src / "sub", doomed, subscriber=pruner)
    assert pruner.ran and third.status == "success" and third.record is not None, w.notes.lines
    assert not packs_first & _packs(main), "the second prune did not delete the doomed packs"
    assert w.kept.openings == 1, "the repository was opened again: the test shows nothing"
    w.kept.close()

    with session.opened(str(main), w.passwords(), lock=False) as repo:
        report = check_service.check(repo, read_data=True)
        assert report.ok, report.errors
        out = io.BytesIO()
        browse.dump(repo, third.record.snapshot_ids[0], str(doomed), out)
    assert out.getvalue() == content


def test_another_hosts_backup_between_runs_is_deduplicated_against_and_mirrors_get_every_snapshot(
    tmp_path: Path,
) -> None:
    """The kept index loads the index files written since the last run, nothing else: a file whose
    content another backup stored meanwhile adds nothing. Each watched snapshot reaches the mirror
    and the state database, as in any run, with one opening per repository for all runs."""
    w = _Watcher(tmp_path, mirrors='["mirror"]')
    src, main = tmp_path / "src", tmp_path / "main"
    assert w.run().status == "success"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shared = os.urandom(150_000)
    (elsewhere / "shared.bin").write_bytes(shared)
    with session.opened(str(main), w.passwords()) as repo:
        backup_paths(repo, BackupRequest(paths=[str(elsewhere)], host="other-host"))

    (src / "copied.bin").write_bytes(shared)
    second = w.run(src / "copied.bin")
    assert second.status == "success" and second.record is not None, w.notes.lines
    assert second.record.bytes_added < 10_000  # this run's new trees only: the data was the other host's
    (src / "a.txt").write_text("changed\n")
    assert w.run(src / "a.txt").status == "success"
    assert w.kept.openings == 2 and w.kept.names == ["main", "mirror"]
    w.kept.close()

    assert snapshot_count(main) == 4 and snapshot_count(tmp_path / "mirror") == 3
    runs = StateDB(w.cfg.state.path).runs("home")
    assert [r.status for r in runs] == ["success"] * 3
    assert all(any(d.step == "copy" and d.status == "success" for d in r.destinations) for r in runs)


def test_a_failed_run_drops_the_kept_repository(tmp_path: Path) -> None:
    w = _Watcher(tmp_path)
    assert w.run().status == "success" and w.kept.names == ["main"]
    for path in sorted((tmp_path / "src").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tmp_path / "src").rmdir()
    assert w.run(tmp_path / "src").status == "failed"
    assert w.kept.names == []  # the next run opens it afresh
