"""The check use case."""

from __future__ import annotations

from amber.engine.checker import Checker, CheckReport
from amber.engine.progress import Progress
from amber.errors import CheckFailed
from amber.repository import Repository
from amber.services.walcheck import check_wal


def check(
    repo: Repository, read_data: bool = False, subset: str | None = None,
    progress: Progress | None = None,
) -> CheckReport:  # fmt: skip
    report = Checker(repo, progress or repo.events).run(read_data=read_data, subset=subset)
    wal = check_wal(repo, read_data=read_data)  # archived PostgreSQL WAL (design §12d)
    report.errors.extend(wal.errors)
    report.warnings.extend(wal.warnings)
    report.wal_objects, report.wal_read = wal.objects, wal.read
    if repo.config.migrating:
        report.warnings.append(
            "the format migration has not finished: objects of both formats are accepted "
            "until `amber migrate` completes (design §23)"
        )
    return report


def raise_if_failed(report: CheckReport) -> None:
    if not report.ok:
        raise CheckFailed(f"check found {len(report.errors)} error(s)")
