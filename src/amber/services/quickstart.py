"""The embedded default job: back up, list, restore and verify, with no setup.

The repository lives under the user's data directory
(``$XDG_DATA_HOME/amber/default``, usually ``~/.local/share/amber/default``); a
random password is created once in ``password`` next to it (mode 0600).

Caches (directories with a ``CACHEDIR.TAG``) and version-control, virtualenv
and build directories are left out (:data:`DEFAULT_EXCLUDES`). The restored
copy is removed once it has been compared, unless asked to keep it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from amber.engine.checker import CheckReport
from amber.engine.patterns import PathMatcher
from amber.engine.restorer import RestoreResult
from amber.errors import IntegrityError
from amber.repository import Snapshot
from amber.services import backup, check, restore, session
from amber.services.snapshots import SnapshotFilter, select

# Rebuilt or re-fetched rather than restored; a `build` directory only at the top of the source.
DEFAULT_EXCLUDES = (".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox",
                    ".mypy_cache", ".pytest_cache", ".ruff_cache")  # fmt: skip


def default_excludes(source: Path) -> list[str]:
    return [*DEFAULT_EXCLUDES, str(source / "build")]


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "amber"


def default_source() -> Path:
    desktop = Path.home() / "Desktop"
    return desktop if desktop.is_dir() else Path.cwd()


def password_file(home: Path) -> Path:
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
    password_file: str
    source: str
    excludes: list[str]
    outcome: backup.BackupOutcome
    snapshots: list[tuple[str, Snapshot]]
    restored: RestoreResult
    restore_dir: str
    kept: bool  # the restored copy is still there
    report: CheckReport
    compared: int = 0  # regular files byte-compared (each hard link too)
    empty: int = 0  # of those, empty: nothing to hash, so not in the SHA-256 count
    extra_links: int = 0  # of those, second and later names of a hard-linked file: hashed once
    not_compared: int = 0  # symlinks, devices, fifos: restored, but not byte-compared
    mismatches: list[str] = field(default_factory=list)


def run(
    source: Path | None = None, repository: Path | None = None, keep_restore: bool = False,
    passwords: session.PasswordSource | None = None,
) -> QuickstartResult:  # fmt: skip
    """``passwords``: for a repository of the user's own (default: the password file made here)."""
    home = data_home()
    src = (source or default_source()).absolute()
    repo_path = repository or home / "default"
    pw_file = str(password_file(home)) if passwords is None else passwords.password_file or ""
    passwords = passwords or session.PasswordSource(password_file=pw_file)
    if not session.exists(str(repo_path)):
        session.create(str(repo_path), passwords.get()).close()
    excludes = default_excludes(src)
    with session.opened(str(repo_path), passwords) as repo:
        req = backup.BackupRequest(paths=[str(src)], excludes=excludes, exclude_caches=True)
        outcome = backup.backup_paths(repo, req)
        snaps = select(repo, SnapshotFilter())
        home.mkdir(parents=True, exist_ok=True)
        target = tempfile.mkdtemp(prefix="amber-restore-", dir=home)
        restored = restore.restore(repo, restore.RestoreRequest(outcome.snapshot_id, target, verify=True))
        report = check.check(repo)
    result = QuickstartResult(str(repo_path), pw_file, str(src), excludes, outcome, snaps, restored, target,
                              True, report)  # fmt: skip
    _compare(src, Path(target + str(src)), PathMatcher(excludes, exclude_caches=True), result)
    if not keep_restore and not result.mismatches:
        shutil.rmtree(target, ignore_errors=True)
        result.kept = os.path.exists(target)
    return result


def _compare(source: Path, restored: Path, excluded: PathMatcher, result: QuickstartResult) -> None:
    """Byte-compare every regular file the backup took with its restored copy."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not _excluded(excluded, Path(root) / d)]
        for name in files:
            original = Path(root) / name
            if _excluded(excluded, original):
                continue
            try:
                st = original.lstat()
            except OSError:
                continue  # gone since the backup
            if not stat.S_ISREG(st.st_mode):
                result.not_compared += 1
                continue
            result.compared += 1
            result.empty += st.st_size == 0
            if st.st_nlink > 1 and st.st_size:
                result.extra_links += (st.st_dev, st.st_ino) in seen
                seen.add((st.st_dev, st.st_ino))
            copy = restored / original.relative_to(source)
            try:
                if original.read_bytes() != copy.read_bytes():
                    result.mismatches.append(str(original))
            except OSError:
                result.mismatches.append(str(original))
        result.not_compared += sum(1 for d in dirs if (Path(root) / d).is_symlink())


def _excluded(matcher: PathMatcher, path: Path) -> bool:
    return matcher.matches(os.fsencode(path), os.fsencode(path.name))


def raise_if_failed(result: QuickstartResult) -> None:
    if result.restored.errors or result.mismatches or not result.report.ok:
        raise IntegrityError(
            f"verification failed: {len(result.mismatches)} mismatched file(s), "
            f"{len(result.restored.errors)} restore error(s), {len(result.report.errors)} check error(s)"
        )
