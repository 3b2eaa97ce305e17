"""Back up a job's databases (and its paths, if it has some) into one snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from amber.engine.progress import Progress
from amber.repository import Repository
from amber.services.backup import BackupOutcome, BackupRequest
from amber.services.streams import NamedStream, backup_streams
from amber.sources.databases.dump import notes, open_dump, open_globals
from amber.sources.databases.spec import DatabaseSpec, globals_path


def backup_databases(
    repo: Repository, req: BackupRequest, databases: Sequence[DatabaseSpec], progress: Progress | None = None,
    before_paths: Callable[[], None] | None = None,
) -> BackupOutcome:  # fmt: skip
    """Each dump at ``/databases/<kind>/<name>.<ext>``; a failing dump writes no snapshot (DatabaseError).

    With ``before_paths`` the dumps are taken first, then it runs, then the paths are read.
    """
    warnings = [n for spec in databases for n in notes(spec)]
    streams = [NamedStream(spec.stream_path, partial(open_dump, spec, repo.cancel)) for spec in databases]
    servers = {globals_path(s): s for s in databases if s.kind == "postgresql" and s.globals}
    streams += [NamedStream(path, partial(open_globals, spec, repo.cancel)) for path, spec in servers.items()]
    outcome = backup_streams(repo, req, streams, progress, before_paths)
    outcome.result.notes.extend(warnings)
    return outcome
