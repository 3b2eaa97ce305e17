"""drill: restore a random sample (or everything), verify it against the recorded SHA-256, time it."""

from __future__ import annotations

import os
import time

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, err_console, human_bytes, plain, quantity
from amber.errors import DrillFailed, IntegrityError
from amber.ops.alerting.notify import Delivery
from amber.ops.config.model import Config, default_config_path
from amber.ops.drills import drill as drill_service
from amber.ops.drills.drill import DrillReport, DrillRequest


def _config(app: AppContext) -> Config | None:
    """The config when one exists (state path, notify targets); drills also work without."""
    if app.config_path or os.path.exists(default_config_path()):
        return app.config()
    return None


@click.command()
@click.option("--files", type=click.IntRange(min=0), help="Files to sample (default 20, or the job's).")
@click.option("--bytes-percent", type=click.FloatRange(0, 100), help="Sample until X% of the bytes.")
@click.option("--snapshot", help="Drill this snapshot (ID prefix or 'latest'); default: random.")
@click.option("--snapshots", type=click.IntRange(min=1), default=1, show_default=True,
              help="Random snapshots to draw the sample from.")  # fmt: skip
@click.option("--seed", type=int, help="Repeat an earlier drill's random choices.")
@click.option("--full", is_flag=True, help="Restore the whole snapshot.")
@click.option("--command", "check_command",
              help="Application check on the restored data (implies --full); "
                   "gets $AMBER_DRILL_DIR and $AMBER_DRILL_PATH.")  # fmt: skip
@click.option("--job", help="Drill the repositories of this configured job.")
@click.option("--scratch", type=click.Path(file_okay=False), help="Where the temporary directory goes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per drilled repository.")
@pass_app
def drill(
    app: AppContext, files: int | None, bytes_percent: float | None, snapshot: str | None, snapshots: int,
    seed: int | None, full: bool, check_command: str | None, job: str | None, scratch: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Restore-test the repository: sampled files are restored and checked against their SHA-256."""
    config = _config(app)
    req = DrillRequest(
        files=-1 if files is None else files, bytes_percent=bytes_percent or 0.0, snapshot=snapshot,
        snapshots=snapshots, seed=seed, full=full, command=check_command or "", scratch=scratch,
    )  # fmt: skip
    results: list[tuple[DrillReport, list[Delivery]]]
    if job:
        if config is None:
            config = app.config()  # raises the "cannot read config file" error
        req = drill_service.request_for(config.job(job), req)
        req.files = 20 if req.files < 0 else req.files
        results = drill_service.drill_job(config, job, req, app.passwords, app.operation)
    else:
        req.files = 20 if req.files < 0 else req.files
        with app.open() as repo:
            results = [drill_service.drill_and_record(repo, req, config, app.target().name)]
    for report, deliveries in results:
        _show(report, as_json)
        for d in deliveries:
            if d.outcome == "failed":
                err_console.print(f"[yellow]warning:[/] alert to {plain(d.target)} failed: {plain(d.error)}")
    _raise_worst([r for r, _ in results])


def _show(report: DrillReport, as_json: bool) -> None:
    o = report.outcome
    if as_json:
        emit_json({
            "repository": report.repository, "status": report.status, "mode": report.mode,
            "seed": report.seed, "snapshot_ids": report.snapshot_ids, "files": o.files, "bytes": o.bytes,
            "seconds": round(o.seconds, 3), "throughput": round(o.throughput, 1),
            "estimated_full_seconds": report.estimated_full_seconds, "timing_files": report.timing_files,
            "failures": o.failures, "unverifiable": o.unverifiable, "errors": report.errors,
            "command": report.command, "command_exit": report.command_exit,
            "command_output": report.command_output,
        })  # fmt: skip
        return
    for failure in o.failures + report.errors:
        err_console.print(f"[red]error:[/] {plain(failure)}", highlight=False)
    if report.command_exit not in (None, 0):
        err_console.print(f"[red]check command exited {report.command_exit}:[/] "
                          f"{plain(report.command_output.strip()[-500:])}", highlight=False)  # fmt: skip
    snaps = ", ".join(s[:8] for s in report.snapshot_ids) or "-"
    echo(
        f"drill {report.repository}: {report.status.upper()}: {report.mode}, snapshot(s) {snaps}, "
        f"{quantity(o.files, 'file')}, {human_bytes(o.bytes)} verified in {o.seconds:.2f}s "
        f"({human_bytes(int(o.throughput))}/s), seed {report.seed}"
    )
    if report.estimated_full_seconds:
        timed = f"; timed on {report.timing_files} more file(s), also verified" if report.timing_files else ""
        size = f"{quantity(report.total_files, 'file')}, {human_bytes(report.total_bytes)}"
        echo(f"estimated time to restore everything: {_duration(report.estimated_full_seconds)} "
             f"for {size}{timed}")  # fmt: skip
    if report.command_exit is not None:
        echo(f"check command: exit {report.command_exit}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _raise_worst(reports: list[DrillReport]) -> None:
    bad = [r for r in reports if r.status == "integrity"]
    if bad:
        raise IntegrityError(f"restore drill found {sum(len(r.outcome.failures) for r in bad)} damaged "
                             f"file(s) in {', '.join(r.repository for r in bad)}")  # fmt: skip
    failed = [r for r in reports if not r.ok]
    if failed:
        first = failed[0]
        why = first.errors[0] if first.errors else f"check command exited {first.command_exit}"
        raise DrillFailed(f"restore drill of {first.repository} failed: {why}")


COMMANDS = [drill]


def show_history(app: AppContext, as_json: bool, limit: int = 10) -> None:
    """Drill success rate per repository and the latest drills (for ``amber status --drills``)."""
    from amber.ops.drills.history import DrillHistory

    history = DrillHistory(drill_service.state_path(_config(app)))
    stats, recent = history.stats(), history.recent(limit=limit)
    if as_json:
        emit_json({
            "repositories": [{**s.__dict__, "success_rate": s.success_rate} for s in stats],
            "recent": [r.__dict__ for r in recent],
        })  # fmt: skip
        return
    if not stats:
        echo("no restore drills recorded yet (run 'amber drill')")
        return
    for s in stats:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_started))
        echo(f"{s.repository}: {s.successes}/{s.total} drills passed ({100 * s.success_rate:.0f}%), "
                   f"last {when} {'ok' if s.last_ok else 'FAILED'}, "
                   f"{human_bytes(int(s.last_throughput))}/s, full restore ~"
                   f"{_duration(s.last_estimated_full_seconds)}")  # fmt: skip
    echo("recent:")
    for r in recent:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started))
        echo(f"  {when}  {r.repository}  {r.mode}  {r.status}  {r.files} file(s)  seed {r.seed}")
