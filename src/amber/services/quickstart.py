"""The embedded default job: back up, list, restore and verify, with no setup.

The repository lives under the user's data directory
(``$XDG_DATA_HOME/amber/default``, usually ``~/.local/share/amber/default``); a
random password is created once in ``password`` next to it (mode 0600).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from amber.engine.checker import CheckReport
from amber.engine.restorer import RestoreResult
from amber.errors import IntegrityError
from amber.repository import Snapshot
from amber.services import backup, check, restore, session
from amber.services.snapshots import SnapshotFilter, select


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "amber"


def default_source() -> Path:
    desktop = Path.home() / "Desktop"
    return desktop if desktop.is_dir() else Path.cwd()


def _password_file(home: Path) -> Path:
    path = home / "password"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path


@dataclass
class QuickstartResult:
    repository: str
    source: str
    outcome: backup.BackupOutcome
    snapshots: list[tuple[str, Snapshot]]
    restored: RestoreResult
    restore_dir: str
    report: CheckReport
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)


def run(source: Path | None = None, repository: Path | None = None) -> QuickstartResult:
    home = data_home()
    src = (source or default_source()).absolute()
    repo_path = repository or home / "default"
    passwords = session.PasswordSource(password_file=str(_password_file(home)))
    if not session.exists(str(repo_path)):
        session.create(str(repo_path), passwords.get()).close()
    with session.opened(str(repo_path), passwords) as repo:
        outcome = backup.backup_paths(repo, backup.BackupRequest(paths=[str(src)]))
        snaps = select(repo, SnapshotFilter())
        target = tempfile.mkdtemp(prefix="amber-restore-", dir=home)
        restored = restore.restore(repo, restore.RestoreRequest(outcome.snapshot_id, target, verify=True))
        report = check.check(repo)
    result = QuickstartResult(str(repo_path), str(src), outcome, snaps, restored, target, report)
    _compare(src, Path(target + str(src)), result)
    return result


def _compare(source: Path, restored: Path, result: QuickstartResult) -> None:
    """Byte-compare every regular file of the source with its restored copy."""
    for root, _dirs, files in os.walk(source):
        for name in files:
            original = Path(root) / name
            if not original.is_file() or original.is_symlink():
                continue
            copy = restored / original.relative_to(source)
            result.compared += 1
            try:
                if original.read_bytes() != copy.read_bytes():
                    result.mismatches.append(str(original))
            except OSError:
                result.mismatches.append(str(original))


def raise_if_failed(result: QuickstartResult) -> None:
    if result.restored.errors or result.mismatches or not result.report.ok:
        raise IntegrityError(
            f"verification failed: {len(result.mismatches)} mismatched file(s), "
            f"{len(result.restored.errors)} restore error(s), {len(result.report.errors)} check error(s)"
        )
