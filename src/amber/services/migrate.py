"""The migrate use case: upgrade a format-1 repository to format 2 in place (design §23).

Runs under an exclusive lock. The steps and their crash safety are in
repository/migration.py; this module decides what runs and reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amber.engine.progress import Progress
from amber.errors import AppendOnlyViolation, IntegrityError
from amber.repository import Repository
from amber.repository.migration import MigrationResult, Migrator, Survey


@dataclass
class MigrateOutcome:
    version_before: int
    migrating_before: bool
    survey: Survey  # what was in format 1 when it started
    result: MigrationResult = field(default_factory=MigrationResult)
    left: Survey | None = None  # what is still in format 1 (None: dry run)
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        return self.left is not None and self.left.done and not self.result.problems


def migrate(repo: Repository, dry_run: bool = False, progress: Progress | None = None) -> MigrateOutcome:
    progress = progress or repo.events
    config = repo.config
    if config.version >= 2 and not config.migrating:
        return MigrateOutcome(config.version, False, Survey(), left=Survey(), dry_run=dry_run)
    if repo.append_only and not dry_run:
        raise AppendOnlyViolation(
            "append-only repository: migrate rewrites and removes objects; "
            "copy it into a new repository instead (amber init, amber copy)"
        )
    with repo.lock(exclusive=True):
        migrator = Migrator(repo, progress.bytes_done)
        outcome = MigrateOutcome(config.version, config.migrating, migrator.survey(), dry_run=dry_run)
        if dry_run:
            return outcome
        migrator.start()
        migrator.packs_and_index(outcome.result)
        migrator.unindexed_packs(outcome.result)
        migrator.snapshots(outcome.result)
        migrator.audit_segments(outcome.result)
        outcome.left = migrator.finish(outcome.result)
    return outcome


def raise_if_incomplete(outcome: MigrateOutcome) -> None:
    if outcome.dry_run or outcome.complete:
        return
    raise IntegrityError(
        "migration incomplete: some objects could not be read; the repository stays readable in "
        "both formats. Run `amber check`, repair what it reports, then `amber migrate` again"
    )
