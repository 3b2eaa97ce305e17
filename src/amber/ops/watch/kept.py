"""The repositories a watcher keeps open between its runs (design §12c).

Each watched run goes through `amber run`'s job pipeline, whose backup and copy
steps open their repositories through ``Repositories.open_working``. Opening
derives the key and loads the whole index (seconds at 100k blobs), while the
rest of a watched run grows with the change, not the repository. So a watcher
opens each of them once, and for every step redoes only what may have changed
(``repository/kept.py``): the checks of opening, then the step's shared lock as
usual, then the index brought up to date under that lock (the files written since;
everything again when a file it had loaded is gone). The store's write counts start
afresh and its cancel signal and event sink are the current job's.

A step that raises, and a store left with anything unsettled (packs not yet
indexed, a failed write), drop the repository: the next step opens it afresh.
The fleet record after the run uses it too (no lock, no index needed).
Retention, the check and Object Lock open their own, as in any run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from amber import catalog
from amber.ops.config.model import Config
from amber.ops.run.steps import Repositories
from amber.repository import Repository
from amber.repository.kept import catch_up, opens_as_before
from amber.services import session
from amber.services.context import OperationContext


@dataclass
class _Open:
    url: str
    repo: Repository
    closing: contextlib.ExitStack


class KeptRepositories:
    """Call it as ``RunOptions.repositories``; :meth:`close` when the watcher stops."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}
        self.openings = 0  # repositories opened (each a key derivation and a whole index)
        self._ctx = OperationContext()  # its sink is the current step's: kept backends' retry notices

    def __call__(
        self, config: Config, passwords: session.PasswordSource, ctx: OperationContext
    ) -> Repositories:
        return _KeptFor(config, passwords, ctx, self)

    @property
    def names(self) -> list[str]:
        return sorted(self._open)

    def drop(self, name: str | None = None) -> None:
        """Close ``name`` (None: all); the next step that needs it opens it afresh."""
        for key in [name] if name is not None else list(self._open):
            kept = self._open.pop(key, None)
            if kept is not None:
                kept.closing.close()

    def close(self) -> None:
        self.drop()

    @contextlib.contextmanager
    def working(self, repos: Repositories, name: str) -> Iterator[Repository]:
        repo = self._take(repos, name)
        repos.ctx.opened(self._open[name].url)
        try:
            with repo.lock():
                catch_up(repo)
                repo.blobs.reset_stats()
                yield repo
                catalog.refresh(repo, repos.config.catalog.enabled)  # a cache: never a failed step
        except BaseException:
            self.drop(name)
            raise
        if not repo.blobs.settled():
            self.drop(name)

    @contextlib.contextmanager
    def unlocked(self, repos: Repositories, name: str) -> Iterator[Repository]:
        """The kept ``name`` for a step that takes no lock and needs no index (the fleet record)."""
        repo = self._take(repos, name)
        try:
            yield repo
        except BaseException:
            self.drop(name)
            raise

    def _take(self, repos: Repositories, name: str) -> Repository:
        """The kept ``name`` (opened now if need be), reporting to and stopped with ``repos``' job."""
        self._ctx.events = repos.ctx.events
        url = repos.settings(name).url
        kept = self._open.get(name)
        if kept is not None and (kept.url != url or not opens_as_before(kept.repo)):
            self.drop(name)
            kept = None
        if kept is None:
            closing = contextlib.ExitStack()
            options = dataclasses.replace(repos.options(name), on_retry=None)  # to self._ctx's sink
            opened = session.opened(url, repos.passwords(name), lock=False, options=options, ctx=self._ctx)
            kept = _Open(url, closing.enter_context(opened), closing)
            self._open[name] = kept
            self.openings += 1
        kept.repo.cancel, kept.repo.events = repos.ctx.cancel, repos.ctx.events
        return kept.repo


class _KeptFor(Repositories):
    """One job's repositories: the backup's and the copy's come from the watcher's kept ones."""

    def __init__(
        self, config: Config, passwords: session.PasswordSource, ctx: OperationContext, kept: KeptRepositories
    ) -> None:
        super().__init__(config, passwords, ctx)
        self.kept = kept

    def open_working(self, name: str) -> contextlib.AbstractContextManager[Repository]:
        return self.kept.working(self, name)

    def open_unlocked(self, name: str) -> contextlib.AbstractContextManager[Repository]:
        return self.kept.unlocked(self, name) if name in self.kept.names else super().open_unlocked(name)
