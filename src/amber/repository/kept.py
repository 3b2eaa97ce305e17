"""A repository kept open across operations (a watcher's, design §12c).

Opening costs a key derivation and loading every index file. An operation that
reuses an opened repository redoes instead what can have changed since: the
checks of opening (:func:`opens_as_before`) and, once it holds its lock, the
index (:func:`catch_up`), so it never works from an index older than its lock
(§13) or with a key or format the repository no longer has.
"""

from __future__ import annotations

from amber.errors import AmberError
from amber.repository.limits import OBJECT_LIMITS
from amber.repository.repo import Repository, open_config
from amber.storage.base import FileType, Handle


def opens_as_before(repo: Repository) -> bool:
    """True while what opening ``repo`` read still holds: its key file is stored and the config
    is the one it decrypted. False after a migration, a removed key or a re-created
    repository (or when either cannot be read): open it again, which may then refuse."""
    try:
        if repo.key_name not in {fi.name for fi in repo.backend.list(FileType.KEY)}:
            return False
        raw = repo.backend.load(Handle(FileType.CONFIG), limit=OBJECT_LIMITS[FileType.CONFIG])
        return open_config(repo.key, raw) == repo.config
    except AmberError:
        return False


def catch_up(repo: Repository) -> None:
    """After locking: load the index files written since the index was loaded (another host's
    backup), or the whole index again when one it loaded is gone (a prune or repair replaced
    it), a new one supersedes others, or one cannot be read."""
    if not repo.blobs.catch_up():
        repo.load_index()
