"""``amber check`` run by hand, recorded in the state database like a scheduled check.

The record is a run of the pseudo-job ``manual:check`` with one ``check`` step
named after the repository (its configured name, else its location), so
``amber status --copies`` counts a manual ``check --read-data`` as verification
of that repository's copies, as it does the checks ``amber run`` makes.
Recording is best effort: a state database that cannot be written gives a
warning, never a failed check.
"""

from __future__ import annotations

import time

from amber.engine.checker import CheckReport
from amber.errors import StateError
from amber.ops.state import Destination, RunRecord, StateDB

JOB = "manual:check"  # not "check:JOB": that is the scheduled check of a job


def record(state_path: str, name: str, location: str, started: float, report: CheckReport,
           read_data: bool, subset: str | None) -> str:  # fmt: skip
    """Write the check's outcome; returns "" or why it could not be written."""
    details = {
        "location": location, "manual": True, "read_data": read_data, "subset": subset or "",
        "snapshots": report.snapshots, "packs": report.packs, "packs_read": report.packs_read,
        "errors": list(report.errors[:20]),
    }  # fmt: skip
    status = "success" if report.ok else "failed"
    message = "" if report.ok else f"check found {len(report.errors)} error(s): {report.errors[0]}"
    run = RunRecord(JOB, started, status=status, ended=time.time())
    run.destinations.append(Destination(name, "check", status, message, "", details))
    if message:
        run.errors.append(f"{name}: {message}")
    try:
        StateDB(state_path).add(run)
    except StateError as exc:
        return f"check not recorded: {exc.message}"
    return ""
