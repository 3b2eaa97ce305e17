"""Ransomware scoring: change facts of one backup in, a verdict with its evidence out. Pure.

Each rule needs a share of the files the parent held *and* a minimum count, so
a small directory's ordinary edits never trip it. Benign churn rewrites files
without making structured content random (updates, builds), adds files
(imports), or deletes without renaming (log rotation, checkouts); an attack
does several of these at once: rewrites to near-random content, renames under
one new extension, drops notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from amber.engine.changefacts import ChangeFacts
from amber.repository.model import Anomaly

CLEAN = "clean"
SUSPICIOUS = "suspicious"


@dataclass(frozen=True)
class Thresholds:
    """``[anomaly]`` in the config; a job's ``anomaly_*`` keys override them."""

    enabled: bool = True
    min_files: int = 20  # no rule fires on fewer affected files than this
    changed_share: float = 0.2  # rewritten + renamed, of the parent's files
    random_share: float = 0.5  # of those, became near random or lost their type's magic
    rename_share: float = 0.1  # renamed under a new extension, of the parent's files
    rename_one_extension: float = 0.8  # share of the renames that use the most common new extension
    ransom_notes: int = 3  # note-like names dropped, together with random rewrites of min_files
    deleted_share: float = 0.5  # deleted, of the parent's files
    hold_clean: int = 1  # clean snapshots before a suspicious one that forget keeps until ack


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def reasons(facts: ChangeFacts, t: Thresholds) -> list[str]:
    """Why the snapshot is suspicious; empty when it is not (or there is nothing to compare)."""
    if not t.enabled or not facts.has_parent or facts.files_before == 0:
        return []
    before = facts.files_before
    touched = facts.files_rewritten + facts.files_renamed
    randomised = facts.entropy_jumps + facts.magic_mismatches
    found: list[str] = []
    if (
        touched >= t.min_files
        and _share(touched, before) >= t.changed_share
        and randomised >= t.min_files
        and _share(randomised, touched) >= t.random_share
    ):
        found.append(
            f"{touched} of {before} files rewritten or renamed ({_share(touched, before):.0%}), "
            f"{randomised} of them now near-random or not matching their type"
        )
    top_ext, top_count = (facts.new_extensions.most_common(1) or [("", 0)])[0]
    if (
        facts.files_renamed >= t.min_files
        and _share(facts.files_renamed, before) >= t.rename_share
        and _share(top_count, facts.files_renamed) >= t.rename_one_extension
    ):
        found.append(f"{facts.files_renamed} files renamed, {top_count} of them to *{top_ext}")
    if facts.ransom_notes >= t.ransom_notes and max(randomised, facts.files_renamed) >= t.min_files:
        found.append(f"{facts.ransom_notes} ransom-note-like files dropped beside changed files")
    deleted = facts.files_deleted
    mass_deletion = deleted >= t.min_files and _share(deleted, before) >= t.deleted_share
    if mass_deletion and (found or deleted == before):  # alone only when all went: cleanups happen
        found.append(f"{facts.files_deleted} of {before} files deleted")
    return found


def assess(facts: ChangeFacts, t: Thresholds) -> Anomaly:
    """The verdict and evidence recorded in the snapshot's summary."""
    why = reasons(facts, t)
    return Anomaly(
        verdict=SUSPICIOUS if why else CLEAN,
        reasons=why,
        counts=facts.counts(),
        top_dirs=[f"{d} ({n})" for d, n in facts.top_dirs.most_common(5)],
        examples=list(facts.examples),
        new_extensions=[f"{e} ({n})" for e, n in facts.new_extensions.most_common(5)],
    )
