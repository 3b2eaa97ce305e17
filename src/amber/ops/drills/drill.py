"""The drill use case: restore a sample (or a whole snapshot), verify it, time it, record it.

A drill picks random snapshots (or the one asked for), restores either a
random sample of files or, when an application check command is given or
``full`` is set, the whole snapshot, into a scratch directory that is always
removed afterwards. Results go to the ``drills`` table of the state database;
metrics and ``amber status`` read the success rate from there.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amber.childenv import child_env
from amber.engine import drill as engine
from amber.engine.drill import DrillOutcome, SampledFile
from amber.engine.restore_estimate import MAX_TIMING_FILES, MIN_TIMING_BYTES, Batch, estimate
from amber.errors import AmberError, SnapshotNotFound, UsageError
from amber.ops.alerting.notify import Delivery, notifier_for
from amber.ops.alerting.policy import Event
from amber.ops.config.model import Config, JobConfig, default_state_dir
from amber.ops.drills.history import DrillHistory, DrillRow
from amber.ops.run.steps import Repositories
from amber.ops.schedule.calendar import next_after, parse_calendar
from amber.ops.state import StateDB
from amber.repository import Repository, Snapshot
from amber.services.context import OperationContext
from amber.services.session import PasswordSource
from amber.services.snapshots import SnapshotFilter, resolve, select

COMMAND_TIMEOUT = 3600.0
_OUTPUT_TAIL = 2000


@dataclass
class DrillRequest:
    files: int = 20
    bytes_percent: float = 0.0
    snapshot: str | None = None  # ID prefix or "latest"; None = random
    snapshots: int = 1  # random snapshots to draw from
    seed: int | None = None
    full: bool = False  # restore whole snapshot (implied by a command)
    command: str = ""  # application check, run with AMBER_DRILL_DIR / AMBER_DRILL_PATH
    scratch: str | None = None  # where the temporary directory goes (default: $TMPDIR)


@dataclass
class DrillReport:
    repository: str
    seed: int
    mode: str  # sample | full
    snapshot_ids: list[str] = field(default_factory=list)
    outcome: DrillOutcome = field(default_factory=DrillOutcome)
    total_bytes: int = 0  # size of the drilled snapshot(s), for the recovery estimate
    total_files: int = 0
    batches: list[Batch] = field(default_factory=list)  # timed restores the estimate is fitted to
    timing_files: int = 0  # restored and verified beyond the sample, to time the restore
    command: str = ""
    command_exit: int | None = None
    command_output: str = ""
    started: float = field(default_factory=time.time)
    errors: list[str] = field(default_factory=list)  # the drill could not run (repository unreachable)

    @property
    def integrity_ok(self) -> bool:
        return self.outcome.ok

    @property
    def ok(self) -> bool:
        return self.outcome.ok and self.command_exit in (None, 0) and not self.errors

    @property
    def status(self) -> str:
        if self.errors:
            return "error"
        if not self.outcome.ok:
            return "integrity"
        return "command_failed" if self.command_exit not in (None, 0) else "success"

    @property
    def estimated_full_seconds(self) -> float:
        """Time to restore everything at the pace the timed batches showed (0 when nothing was timed)."""
        return estimate(self.batches, self.total_files, self.total_bytes)


def run_drill(repo: Repository, req: DrillRequest, name: str = "") -> DrillReport:
    if req.files < 0 or not 0 <= req.bytes_percent <= 100:
        raise UsageError("--files must be >= 0 and --bytes-percent between 0 and 100")
    seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    full = req.full or bool(req.command)
    mode = "full" if full else "sample"
    report = DrillReport(name or repo.backend.location, seed, mode, command=req.command)
    chosen = _choose_snapshots(repo, req, rng, 1 if full else max(1, req.snapshots))
    scratch = tempfile.mkdtemp(prefix="amber-drill-", dir=req.scratch)
    try:
        os.chmod(scratch, 0o711)  # a check command may run as the data's owner (e.g. postgres)
        if full:
            sid, snap = chosen[0]
            report.snapshot_ids.append(sid)
            _drill_full(repo, sid, snap, scratch, report)
            if req.command and report.outcome.ok:
                _run_command(req.command, scratch, snap, report)
        else:
            per_snapshot = -(-req.files // len(chosen)) if req.files else 0
            for i, (sid, snap) in enumerate(chosen):
                report.snapshot_ids.append(sid)
                _drill_sample(repo, sid, snap, os.path.join(scratch, str(i)),
                              per_snapshot, req.bytes_percent, rng.randrange(2**31), report)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _choose_snapshots(
    repo: Repository, req: DrillRequest, rng: random.Random, count: int
) -> list[tuple[str, Snapshot]]:  # fmt: skip
    if req.snapshot:
        return [resolve(repo, req.snapshot)]
    found = select(repo, SnapshotFilter())
    if not found:
        raise SnapshotNotFound(f"no snapshots to drill in {repo.backend.location}")
    return rng.sample(found, min(count, len(found)))


def _merge(report: DrillReport, outcome: DrillOutcome, prefix: str) -> None:
    total = report.outcome
    total.files += outcome.files
    total.bytes += outcome.bytes
    total.seconds += outcome.seconds
    total.unverifiable += outcome.unverifiable
    total.failures.extend(f"{prefix}{f}" for f in outcome.failures)


def _drill_sample(
    repo: Repository, sid: str, snap: Snapshot, target: str, files: int, bytes_percent: float,
    seed: int, report: DrillReport,
) -> None:  # fmt: skip
    unlisted: list[str] = []  # damaged trees: drill failures, and the rest is still sampled
    try:
        listing: list[SampledFile] = engine.regular_files(repo.load_tree, snap.tree, unlisted)
    except AmberError as exc:  # a damaged tree is a drill failure, not a crash
        report.outcome.failures.append(f"snapshot {sid[:8]}: cannot list files: {exc.message}")
        return
    report.outcome.failures.extend(f"snapshot {sid[:8]}: cannot list files: {why}" for why in unlisted)
    report.total_bytes = max(report.total_bytes, sum(f.node.size for f in listing))
    report.total_files = max(report.total_files, len(listing))
    picked = engine.sample(listing, files, bytes_percent, seed)
    outcome = engine.restore_sample(repo.load_tree, repo.blobs, picked, target)
    _merge(report, outcome, f"{sid[:8]}:")
    report.batches.append(Batch(outcome.files, outcome.bytes, outcome.seconds))
    if len(report.batches) == 1:  # one timing batch per drill is enough
        _time_restore(repo, sid, listing, picked, target + "-timing", seed, report)


def _time_restore(
    repo: Repository, sid: str, listing: list[SampledFile], picked: list[SampledFile], target: str,
    seed: int, report: DrillReport,
) -> None:  # fmt: skip
    """Restore and verify more random files, up to MIN_TIMING_BYTES, so the estimate rests on enough work."""
    chosen = {id(f) for f in picked}
    rest = [f for f in listing if id(f) not in chosen]
    random.Random(seed ^ 0x5EED).shuffle(rest)
    batch: list[SampledFile] = []
    size = sum(f.node.size for f in picked)
    for f in rest:
        if size >= MIN_TIMING_BYTES or len(batch) >= MAX_TIMING_FILES:
            break
        batch.append(f)
        size += f.node.size
    if not batch:
        return
    outcome = engine.restore_sample(repo.load_tree, repo.blobs, batch, target)
    report.outcome.failures.extend(f"{sid[:8]}:{f}" for f in outcome.failures)  # damage found is damage
    report.outcome.unverifiable += outcome.unverifiable
    report.timing_files += outcome.files
    report.batches.append(Batch(outcome.files, outcome.bytes, outcome.seconds))


def _drill_full(repo: Repository, sid: str, snap: Snapshot, target: str, report: DrillReport) -> None:
    try:
        outcome = engine.restore_all(repo.load_tree, repo.blobs, snap.tree, target)
    except AmberError as exc:
        report.outcome.failures.append(f"snapshot {sid[:8]}: {exc.message}")
        return
    report.total_bytes = outcome.bytes
    report.total_files = outcome.files
    report.batches.append(Batch(outcome.files, outcome.bytes, outcome.seconds))
    _merge(report, outcome, f"{sid[:8]}:")


def _run_command(command: str, scratch: str, snap: Snapshot, report: DrillReport) -> None:
    first = snap.paths[0] if snap.paths else "/"
    path = os.path.join(scratch, first.lstrip("/"))
    env = child_env({"AMBER_DRILL_DIR": scratch, "AMBER_DRILL_PATH": path})
    try:
        proc = subprocess.run(
            command, shell=True, env=env, cwd=scratch, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        report.command_exit = -1
        report.command_output = f"timed out after {exc.timeout:.0f}s"
        return
    except OSError as exc:
        report.command_exit = 127
        report.command_output = f"cannot run: {exc.strerror}"
        return
    report.command_exit = proc.returncode
    report.command_output = proc.stdout.decode(errors="replace")[-_OUTPUT_TAIL:]


# -- recording, alerting, and drilling a configured job -----------------------------
def state_path(config: Config | None) -> str:
    return config.state.path if config else os.path.join(default_state_dir(), "state.db")


def record(report: DrillReport, path: str, job: str = "") -> None:
    DrillHistory(path).add(DrillRow(
        started=report.started, ended=time.time(), repository=report.repository, job=job, mode=report.mode,
        status=report.status, snapshot_ids=report.snapshot_ids, files=report.outcome.files,
        bytes=report.outcome.bytes, seconds=report.outcome.seconds, throughput=report.outcome.throughput,
        estimated_full_seconds=report.estimated_full_seconds, seed=report.seed,
        command_exit=report.command_exit, failures=report.outcome.failures + report.errors,
    ))  # fmt: skip


def alert(config: Config | None, report: DrillReport, job: str = "") -> list[Delivery]:
    """An integrity alert (sent at once) for a mismatch; a failure alert for a failed check command."""
    if config is None or report.ok:
        return []
    if report.status == "integrity":
        failures = report.outcome.failures
        message = (f"restore drill of {report.repository} failed: {len(failures)} file(s) did not "
                   f"restore intact ({failures[0]})")  # fmt: skip
        snapshots = ", ".join(s[:8] for s in report.snapshot_ids)
        details = {"seed": report.seed, "snapshots": snapshots}
        event = Event("integrity", job, message, report.repository, details)
    else:
        detail = report.errors[0] if report.errors else f"check command exited {report.command_exit}"
        event = Event("failure", job, f"restore drill of {report.repository} failed: {detail}",
                      report.repository, {"output": report.command_output[-300:]})  # fmt: skip
    return notifier_for(config).send(event)


def drill_and_record(
    repo: Repository, req: DrillRequest, config: Config | None, name: str = "", job: str = ""
) -> tuple[DrillReport, list[Delivery]]:  # fmt: skip
    report = run_drill(repo, req, name)
    record(report, state_path(config), job)
    return report, alert(config, report, job)


def drill_job(
    config: Config, job_name: str, req: DrillRequest, passwords: PasswordSource,
    ctx: OperationContext | None = None,
) -> list[tuple[DrillReport, list[Delivery]]]:  # fmt: skip
    """Drill each of the job's repositories: ``drill.repositories``, else primary and mirrors."""
    job = config.job(job_name)
    names = list(job.drill.repositories) if job.drill and job.drill.repositories else [
        job.repository, *job.mirrors]  # fmt: skip
    repos = Repositories(config, passwords, ctx)
    results = []
    for name in names:
        if repos.settings(name).offline and not repos.present(name):
            continue  # an air-gapped copy that is not connected now
        try:
            with repos.open(name) as repo:
                results.append(drill_and_record(repo, req, config, name, job_name))
        except AmberError as exc:
            report = DrillReport(name, req.seed or 0, "sample", errors=[exc.message])
            record(report, config.state.path, job_name)
            results.append((report, alert(config, report, job_name)))
    return results


def request_for(job: JobConfig, base: DrillRequest) -> DrillRequest:
    """Fill what the command line left open from the job's ``drill`` settings."""
    d = job.drill
    if d is None:
        return base if base.files >= 0 else DrillRequest(**{**base.__dict__, "files": 20})
    return DrillRequest(
        files=base.files if base.files >= 0 else d.files,
        bytes_percent=base.bytes_percent or d.bytes_percent,
        snapshot=base.snapshot, snapshots=base.snapshots, seed=base.seed, full=base.full,
        command=base.command or d.command, scratch=base.scratch,
    )  # fmt: skip


class DrillExtension:
    """A daemon extension: runs each job's drill on its ``drill.schedule`` (stamps ``drill:JOB``)."""

    def __init__(self, passwords: PasswordSource, note: Callable[[str], None] = lambda _m: None) -> None:
        self.passwords = passwords
        self.note = note

    def start(self, config: Config) -> None:
        return None

    def tick(self, config: Config) -> None:
        db = StateDB(config.state.path)
        now = dt.datetime.now()
        for job in config.jobs.values():
            if job.drill is None or not job.drill.schedule:
                continue
            stamp = db.stamp(f"drill:{job.name}")
            if stamp is None:  # first sight: wait for the next occurrence
                db.set_stamp(f"drill:{job.name}", now.timestamp())
                continue
            upcoming = next_after(parse_calendar(job.drill.schedule), dt.datetime.fromtimestamp(stamp))
            if upcoming is None or upcoming > now:
                continue
            db.set_stamp(f"drill:{job.name}", now.timestamp())  # before running: a crash must not loop
            req = request_for(job, DrillRequest(files=-1))
            for report, _ in drill_job(config, job.name, req, self.passwords):
                self.note(f"daemon: drill {job.name} on {report.repository}: {report.status}")

    def stop(self) -> None:
        return None
