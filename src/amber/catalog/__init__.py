"""The local catalog of file versions: derived data, rebuilt from the repository (docs/design.md §2, §24).

`find` and `history` answer from it in milliseconds; it is only ever a cache.
:func:`refresh` brings it up to date after a command changed the snapshot list.
"""

from __future__ import annotations

from amber.catalog import store
from amber.catalog.ingest import SyncResult, sync
from amber.errors import CatalogError
from amber.repository import Repository


def refresh(repo: Repository, configured: bool = True) -> str | None:
    """Sync the catalog if the user keeps one. Returns a one-line notice, or None.

    Never raises: a catalog that cannot follow is rebuilt or bypassed on the next search.
    """
    if not store.enabled(configured) or not store.catalog_path(repo.id).exists():
        return None
    try:
        conn, rebuilt = store.open_catalog(repo.id)
        try:
            result: SyncResult = sync(conn, repo)
        finally:
            conn.close()
    except CatalogError as exc:
        return f"catalog not updated: {exc}"
    if result.failed:
        sid, why = result.failed[0]
        return f"catalog: snapshot {sid[:8]} not indexed ({why}); searches walk the trees until it is"
    return rebuilt
