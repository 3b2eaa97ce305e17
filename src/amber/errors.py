"""Every error amber raises on purpose, with its exit code.

The tree (exit code in brackets)::

    AmberError [1]
    ├── UsageError [2]                  bad command-line input
    ├── PartialBackup [3]               snapshot written, some files skipped
    ├── RepositoryNotFound [10]
    ├── RepositoryLocked [11]
    ├── WrongPassword [12]
    ├── RepositoryExists [13]
    ├── IntegrityError [14]             an object failed authentication or its hash
    │   ├── ObjectTooLarge              a stored object is over its size limit (never read whole)
    │   └── InvalidTree                 a tree breaks the tree rules (names, order, size, depth)
    │       └── InvalidName             an entry name that is empty, . or .., or holds / or NUL
    ├── NotFound [15]
    │   ├── ObjectNotFound              a stored object is missing
    │   └── SnapshotNotFound            no snapshot matches
    ├── TreeTooLarge [1]                a directory has more entries than a tree may hold
    ├── StorageError [1]                the backend failed for another reason
    │   ├── PermissionDenied [16]
    │   ├── DiskFull [17]
    │   └── TransientStorageError [30]  timeout, dropped connection, 5xx: retried, then this
    ├── CheckFailed [18]                check found damage
    ├── SourceCommandFailed [19]        --stdin-from-command exited non-zero
    ├── AppendOnlyViolation [20]        a delete or overwrite in append-only mode
    ├── ConfigError [21]                the config file is invalid ("file:line: key: problem")
    ├── JobRunning [22]                 another `amber run` of the same job is in progress
    ├── AuditLogBroken [23]             the audit log's hash chain or its repository copy disagrees
    ├── DrillFailed [24]                a restore drill's application check failed
    ├── NotifyFailed [25]               a notification could not be delivered
    ├── StateError [26]                 the local state database (run history) failed
    ├── HookFailed [27]                 a job's before-hook exited non-zero; nothing was backed up
    ├── CatalogError [28]               the local catalog (a cache) could not be built or read
    ├── MountFailed [29]                FUSE is unavailable or the mount failed
    ├── LeaseLost [31]                  the repository lock could not be refreshed before it expired
    ├── Interrupted [130]               stopped at a safe point by SIGINT (Ctrl-C)
    │   ├── Terminated [143]            ... by SIGTERM (systemd stop, shutdown)
    │   └── HungUp [129]                ... by SIGHUP (the terminal went away)
    ├── LocalSnapshotError [32]         a filesystem snapshot (btrfs, zfs, lvm) could not be taken,
    │                                   listed, verified or removed
    ├── RollbackRefused [33]            a rollback would destroy data or needs a reboot: refused
    ├── DatabaseError [34]              a database dump or restore failed; no snapshot written
    ├── DatabaseNotEmpty [35]           db restore refused to overwrite a database or file that holds data
    ├── SuspiciousBackup [36]           snapshot written and tagged suspicious (ransomware check)
    ├── ScheduleNotEnabled [37]         `schedule install` wrote units that systemctl did not enable
    ├── PurgeRefused [38]               purge refused: the repository is append-only or under Object Lock
    ├── PurgeIncomplete [39]            purge ran, but purged data is still stored (or a destination failed)
    ├── WalConflict [40]                wal-push: the archive holds other content under that WAL name
    ├── WalMissing [41]                 wal-get: the archive has no such WAL file (recovery ends there)
    └── ExtraMissing [43]               a feature needs an optional extra (PDF reports: amber[pdf])

Vendor exceptions (OSError, msgspec, cryptography) are converted at the layer
boundary by :func:`from_os_error`; nothing above ``storage`` sees raw ``OSError``
from a backend. The CLI prints ``amber: <message>`` and exits with ``exit_code``.
Exit code 130 means interrupted (SIGINT).
"""

from __future__ import annotations

import errno

EXIT_INTERRUPTED = 130  # a second Ctrl-C: stopped at once, not at a safe point


class AmberError(Exception):
    """Base of all deliberate amber failures."""

    exit_code = 1
    default_message = "operation failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(AmberError):
    exit_code = 2
    default_message = "invalid usage"


class PartialBackup(AmberError):
    exit_code = 3
    default_message = "backup finished but some files could not be read"


class RepositoryNotFound(AmberError):
    exit_code = 10
    default_message = "repository does not exist"


class RepositoryLocked(AmberError):
    exit_code = 11
    default_message = "repository is locked by another process"


class WrongPassword(AmberError):
    exit_code = 12
    default_message = "wrong password or no key found"


class RepositoryExists(AmberError):
    exit_code = 13
    default_message = "repository already exists"


class IntegrityError(AmberError):
    exit_code = 14
    default_message = "stored data is corrupted"


class ObjectTooLarge(IntegrityError):
    """A stored object (or a length read from one) is over the limit for its kind.

    Raised before the object is read or the length is allocated, so a planted
    multi-GiB file costs a stat, not the memory (design §3, "Size limits").
    """

    default_message = "stored object is larger than any amber writes"


class InvalidTree(IntegrityError):
    """Damage: a tree whose entries break the rules of design §9 (names, order, size, depth)."""

    default_message = "tree is invalid"


class InvalidName(InvalidTree):
    """An entry name that must never reach a path: empty, ``.``, ``..``, or holding ``/`` or NUL."""

    default_message = "invalid entry name"


class TreeTooLarge(AmberError):
    """Refused on write: the tree would exceed the limits every reader enforces."""

    default_message = "directory has more entries than a tree may hold"


class NotFound(AmberError):
    exit_code = 15
    default_message = "not found"


class ObjectNotFound(NotFound):
    default_message = "object not found in repository"


class SnapshotNotFound(NotFound):
    default_message = "no matching snapshot"


class StorageError(AmberError):
    default_message = "storage backend failed"


class PermissionDenied(StorageError):
    exit_code = 16
    default_message = "permission denied"


class DiskFull(StorageError):
    exit_code = 17
    default_message = "no space left on device"


class TransientStorageError(StorageError):
    """A failure that may go away on its own; the retry wrapper retries only these."""

    exit_code = 30
    default_message = "storage backend temporarily unavailable"


class CheckFailed(AmberError):
    exit_code = 18
    default_message = "repository check found errors"


class SourceCommandFailed(AmberError):
    exit_code = 19
    default_message = "source command failed; no snapshot written"


class AppendOnlyViolation(AmberError):
    exit_code = 20
    default_message = "repository is append-only: delete and overwrite are refused"


class ConfigError(AmberError):
    exit_code = 21
    default_message = "invalid configuration"


class JobRunning(AmberError):
    exit_code = 22
    default_message = "the job is already running"


class AuditLogBroken(AmberError):
    exit_code = 23
    default_message = "the audit log failed verification"


class DrillFailed(AmberError):
    exit_code = 24
    default_message = "the restore drill failed"


class NotifyFailed(AmberError):
    exit_code = 25
    default_message = "a notification could not be delivered"


class StateError(AmberError):
    exit_code = 26
    default_message = "the state database failed"


class HookFailed(AmberError):
    exit_code = 27
    default_message = "a hook command failed"


class CatalogError(AmberError):
    """Only ``amber catalog`` surfaces this; searches fall back to the tree walk."""

    exit_code = 28
    default_message = "the local catalog failed"


class SuspiciousBackup(AmberError):
    """The backup was written, but its changes look like ransomware (amber.anomaly)."""

    exit_code = 36
    default_message = "backup written but tagged suspicious"


class PurgeRefused(AmberError):
    """Erasure is impossible here: the repository is append-only, or Object Lock keeps its objects."""

    exit_code = 38
    default_message = "purge refused: this repository cannot delete data"


class PurgeIncomplete(AmberError):
    """Purge ran, but its verification found purged data still stored, or a destination was not purged."""

    exit_code = 39
    default_message = "purge incomplete: purged data is still stored"


class ScheduleNotEnabled(AmberError):
    exit_code = 37
    default_message = "units written but not enabled"


class ExtraMissing(AmberError):
    """A feature needs an optional extra that is not installed (PDF reports: amber[pdf])."""

    exit_code = 43
    default_message = "an optional extra is not installed"


class LeaseLost(AmberError):
    """The operation held a lock whose lease lapsed: another process may have acted on it as stale."""

    exit_code = 31
    default_message = "the repository lock could not be refreshed in time; the operation was stopped"


class DatabaseError(AmberError):
    exit_code = 34
    default_message = "a database dump or restore failed"


class DatabaseNotEmpty(AmberError):
    exit_code = 35
    default_message = "the target database is not empty; give --yes to overwrite it"


class WalConflict(AmberError):
    """PostgreSQL's archive rule: a WAL name is archived once; other content under it is refused."""

    exit_code = 40
    default_message = "the archive already holds different content under this WAL file name"


class WalMissing(NotFound):
    """wal-get: not in the archive. PostgreSQL asks for files past the end on purpose."""

    exit_code = 41
    default_message = "no such WAL file in the archive"


class Interrupted(AmberError):
    """The operation was asked to stop and stopped at a safe point; what was stored is kept."""

    exit_code = 130
    default_message = "interrupted"


class Terminated(Interrupted):
    exit_code = 143
    default_message = "terminated"


class HungUp(Interrupted):
    exit_code = 129
    default_message = "hung up"


class MountFailed(AmberError):
    """`amber mount`: no FUSE library or device, or the kernel refused the mount."""

    exit_code = 29
    default_message = "the mount failed"


def is_native_panic(exc: BaseException) -> bool:
    """pyo3's ``PanicException`` (blake3, cryptography): a ``BaseException``, one class per
    extension module, so it is recognised by name. Callers that feed untrusted bytes to
    native code convert it to ``IntegrityError``; it must never escape as a traceback."""
    return type(exc).__name__ == "PanicException"


class LocalSnapshotError(AmberError):
    exit_code = 32
    default_message = "a filesystem snapshot command failed"


class RollbackRefused(AmberError):
    exit_code = 33
    default_message = "rollback refused"


def from_os_error(exc: OSError, what: str) -> AmberError:
    """Convert an OSError raised while touching ``what`` into an amber error."""
    detail = f"{what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left on device while writing {what}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(f"permission denied: {detail}")
    if exc.errno == errno.ENOENT:
        return ObjectNotFound(f"not found: {what}")
    return StorageError(detail)
