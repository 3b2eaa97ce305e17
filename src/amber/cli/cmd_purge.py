"""purge: erase paths from every snapshot, prune them away, and verify they are gone."""

from __future__ import annotations

import sys
from typing import Any

import click

from amber.cli.cmd_rewrite import parse_sha256, print_rewrites, removed_json
from amber.cli.context import AppContext, pass_app
from amber.cli.output import echo, emit_json, err_console, human_bytes, plain, quantity
from amber.engine.erasure import ErasureReport
from amber.engine.patterns import read_exclude_files
from amber.errors import PurgeIncomplete, PurgeRefused, UsageError
from amber.ops import erasure
from amber.ops.config.target import load_optional
from amber.services.purge import PurgeRequest, PurgeResult


@click.command()
@click.argument("patterns", nargs=-1)
@click.option(
    "--pattern-file",
    "pattern_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Read more paths/patterns from a file, one per line.",
)
@click.option(
    "--sha256",
    "hashes",
    multiple=True,
    metavar="HEX",
    help="Also purge files with this content (SHA-256), under any name.",
)
@click.option(
    "--everywhere", is_flag=True, help="Purge every configured repository and recorded copy destination too."
)
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be purged.")
@click.option("--yes", is_flag=True, help="Do it without asking (purged data cannot be recovered).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def purge(
    app: AppContext, patterns: tuple[str, ...], pattern_files: tuple[str, ...], hashes: tuple[str, ...],
    everywhere: bool, dry_run: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Erase PATTERNS (absolute paths, or backup's --exclude patterns) from every snapshot for good.

    Rewrites each snapshot that holds them, removes the originals, prunes, then
    verifies that no pack still holds their data. Bytes also used by a kept file
    stay (deduplication); the kept paths are named. Refused (exit 38) where data
    cannot be deleted: append-only repositories and Object Lock.
    """
    wanted = list(patterns)
    try:
        wanted += read_exclude_files(pattern_files)
    except OSError as exc:
        raise UsageError(f"--pattern-file: {exc.strerror}: {exc.filename}") from exc
    req = PurgeRequest(wanted, parse_sha256(hashes), dry_run)
    if not (wanted or req.sha256):
        raise UsageError("purge needs the paths (or patterns, or --sha256) to erase")
    if not dry_run and not yes:
        _confirm(wanted)
    config, _ = load_optional(app.config_path)
    state_dir = config.state_dir if config else None
    note = (lambda m: echo(m, err=True)) if not as_json else None
    if everywhere:
        _everywhere(app, req, config, state_dir, note, as_json)
        return
    with app.open(lock=False) as repo:  # the service takes an exclusive lock
        result = erasure.purge_repository(repo, req, state_dir, app.catalog_enabled(), note)
    app.operation.record.details = {"purge": result.audit(req.patterns, req.sha256)}
    if as_json:
        emit_json(_json(result))
    else:
        _print(result)
    if not dry_run and not result.verified:
        raise PurgeIncomplete(_incomplete(result))


def _confirm(patterns: list[str]) -> None:
    if not sys.stdin.isatty():
        raise UsageError("purge erases data for good: give --yes (run it with --dry-run first)")
    shown = ", ".join(patterns[:3]) + (" ..." if len(patterns) > 3 else "")
    if not click.confirm(f"erase {shown} from every snapshot, for good?", err=True):
        raise UsageError("purge not confirmed; nothing was changed")


def _everywhere(app: AppContext, req: PurgeRequest, config: Any, state_dir: str | None,
                note: Any, as_json: bool) -> None:  # fmt: skip
    t = app.target()
    primary = erasure.Place(t.name, t.location, t.passwords, t.options)
    targets = erasure.places(config, primary, app.passwords, app.operation.options)
    outcomes = erasure.purge_everywhere(targets, req, app.operation, state_dir, app.catalog_enabled(), note)
    app.operation.record.details = {"purge": [o.audit(req) for o in outcomes]}
    if as_json:
        emit_json([{"name": o.place.name, "status": o.status, "error": o.error or None,
                    **(_json(o.result) if o.result else {})} for o in outcomes])  # fmt: skip
    else:
        for o in outcomes:
            echo(f"== {o.place.name}: {o.status}" + (f": {plain(o.error)}" if o.error else ""))
            if o.result is not None:
                _print(o.result)
    code = erasure.exit_code(outcomes)
    bad = [o.place.name for o in outcomes if o.status not in (erasure.PURGED, erasure.PLANNED)]
    if code == PurgeRefused.exit_code:
        raise PurgeRefused(f"purge refused by {', '.join(bad)}; the others were purged")
    if code:
        raise PurgeIncomplete(f"purge incomplete on {', '.join(bad)}; see the report above")


def _incomplete(result: PurgeResult) -> str:
    r = result.report
    if r is None:
        return "purge incomplete"
    parts = []
    if r.still_stored:
        parts.append(f"{len(r.still_stored)} pack(s) still hold purged data")
    if r.still_indexed:
        parts.append(f"{len(r.still_indexed)} purged blob(s) are still indexed")
    if r.unreadable:
        parts.append(f"{len(r.unreadable)} pack header(s) could not be read")
    return "purge incomplete: " + "; ".join(parts) + " (run `amber check`, then purge again)"


def _warn_retained(report: ErasureReport, stay: str) -> None:
    kept = report.kept_paths()
    more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
    err_console.print(
        f"[yellow]warning:[/] {quantity(len(report.retained), 'blob')} of the purged files are also used by "
        f"kept files and {stay} (deduplication): {plain(', '.join(kept[:10]))}{more}; "
        "purge those paths too to erase these bytes", highlight=False)  # fmt: skip


def _json(result: PurgeResult) -> dict[str, Any]:
    out: dict[str, Any] = {"dry_run": result.dry_run, "blobs": len(result.targets),
                           "would_be_refused": result.refusal or None,
                           "snapshots": [removed_json(e) for e in result.rewrite.rewritten]}  # fmt: skip
    if result.prune is not None:
        out["prune"] = result.prune.as_dict()
    r = result.report
    if r is not None:
        if not result.dry_run:
            out["verified"] = r.ok
            out["erased_blobs"] = r.erased
            out["packs_read"] = r.packs_read
        out["retained"] = [{"blob": b.hex(), "kept_by": [{"snapshot": s, "path": p} for s, p in places]}
                           for b, places in r.retained.items()]  # fmt: skip
    return out


def _print(result: PurgeResult) -> None:
    print_rewrites(result.rewrite)
    rw = result.rewrite
    files = sum(e.files for e in rw.rewritten)
    size = sum(e.bytes for e in rw.rewritten)
    if result.dry_run:
        echo(f"dry run: would purge {quantity(files, 'file')} ({human_bytes(size)}) from "
             f"{quantity(len(rw.rewritten), 'snapshot')}")  # fmt: skip
        if result.refusal:
            echo(f"note: the purge itself would be refused here: {plain(result.refusal)}")
        if result.report is not None and result.report.retained:
            _warn_retained(result.report, "would stay")
        return
    snaps = quantity(len(rw.rewritten), "snapshot")
    echo(f"purged {quantity(files, 'file')} ({human_bytes(size)}) from {snaps}")
    if result.prune is not None:
        p = result.prune
        echo(f"prune: {p.plan.repacked.packs} packs repacked, {p.deleted_packs} deleted, "
             f"{human_bytes(p.deleted_bytes)} freed")  # fmt: skip
    r = result.report
    if r is None:
        return
    if r.retained:
        _warn_retained(r, "stay")
    if r.ok:
        echo(f"verified: {quantity(r.erased, 'blob')} gone from the index and from all "
             f"{quantity(r.packs_read, 'pack')}")  # fmt: skip


COMMANDS = [purge]
