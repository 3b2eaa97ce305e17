"""The migrate use case: upgrade a repository to the current format in place (design §23).

Runs under an exclusive lock. Format 1 to 2 rewrites every sealed object (the steps and
their crash safety are in repository/migration.py); format 2 to 3 rewrites only
``config``: version 3 adds WAL records that keep data blobs alive, which a client that
knows only version 2 would prune away, so it must refuse such a repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from amber.engine.progress import Progress
from amber.errors import AppendOnlyViolation, IntegrityError
from amber.repository import Repository
from amber.repository.migration import MigrationResult, Migrator, Survey
from amber.repository.sealing import FORMAT_VERSION


@dataclass
class MigrateOutcome:
    version_before: int
    migrating_before: bool
    survey: Survey  # what was in format 1 when it started
    result: MigrationResult = field(default_factory=MigrationResult)
    left: Survey | None = None  # what is still in format 1 (None: dry run)
    dry_run: bool = False
    version_after: int = 0  # the format when it ended

    @property
    def complete(self) -> bool:
        return self.left is not None and self.left.done and not self.result.problems


def migrate(repo: Repository, dry_run: bool = False, progress: Progress | None = None) -> MigrateOutcome:
    progress = progress or repo.events
    config = repo.config
    if config.version >= 2 and not config.migrating:
        outcome = MigrateOutcome(config.version, False, Survey(), left=Survey(), dry_run=dry_run,
                                 version_after=config.version)  # fmt: skip
        if config.version < FORMAT_VERSION and not dry_run:
            _refuse_append_only(repo)
            with repo.lock(exclusive=True):
                outcome.version_after = _to_current(repo)
        return outcome
    if not dry_run:
        _refuse_append_only(repo)
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
        outcome.version_after = _to_current(repo) if outcome.complete else repo.config.version
    return outcome


def _refuse_append_only(repo: Repository) -> None:
    if repo.append_only:
        raise AppendOnlyViolation(
            "append-only repository: migrate rewrites and removes objects; "
            "copy it into a new repository instead (amber init, amber copy)"
        )


def _to_current(repo: Repository) -> int:
    """Format 2 to the current format: only ``config`` changes (its objects are all valid)."""
    if repo.config.version == 2 and not repo.config.migrating:
        repo.save_config(msgspec.structs.replace(repo.config, version=FORMAT_VERSION))
    return repo.config.version


def raise_if_incomplete(outcome: MigrateOutcome) -> None:
    if outcome.dry_run or outcome.complete:
        return
    raise IntegrityError(
        "migration incomplete: some objects could not be read; the repository stays readable in "
        "both formats. Run `amber check`, repair what it reports, then `amber migrate` again"
    )
