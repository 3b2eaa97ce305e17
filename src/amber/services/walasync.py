"""``wal-push --async``: one call archives every WAL file PostgreSQL has ready (design §12d).

PostgreSQL calls ``archive_command`` once per file, one at a time. With ``--async``
(or ``AMBER_WAL_ASYNC=1``) the call for file F pushes, in this one process with the key
opened once and under one lock, F and every other file that ``pg_wal/archive_status``
marks ``.ready`` (up to :data:`~amber.services.walspool.MAX_BATCH`): one pack stream and index file, a record
per file. For each file now durable it leaves a marker in a local spool directory
holding the file's size and SHA-256. When PostgreSQL then asks for one of those, the
call finds the marker, checks that the file still has that content, and exits 0
without opening the repository. A marker is written only after the record is durable,
so exit 0 still means what PostgreSQL needs. Markers of files no longer in ``pg_wal``
are removed on the next batch.
"""

from __future__ import annotations

import os

from amber.repository import Repository
from amber.services.walpush import push_files
from amber.services.walspool import forget_archived, mark_pushed, ready_paths


def push_ready(repo: Repository, cluster: str, path: str, spool: str) -> bool:
    """Archive ``path`` and the files ready after it; mark each one now durable. Raises what
    ``path``'s own push met (the others are retried when PostgreSQL asks for them)."""
    batch = push_files(repo, cluster, ready_paths(path))
    mark_pushed(spool, [(os.path.basename(p.path), p.size, p.sha256) for p in batch if p.error is None])
    forget_archived(spool, os.path.dirname(path))
    if batch[0].error is not None:
        raise batch[0].error
    return batch[0].stored
