"""`amber daemon`: a watcher thread for every job with ``watch = true``.

Each watcher is its own operation (a child of the daemon's, so a signal to the
daemon stops it at its next safe point); a scheduled run of the same job and a
watched snapshot never overlap, as both take the job's lock (a watched run that
finds the job running retries with a full walk after ``watch_interval``).
"""

from __future__ import annotations

import dataclasses
import threading

from amber.errors import AmberError, Interrupted
from amber.ops.config.model import Config
from amber.ops.run.job import RunOptions
from amber.ops.watch.loop import WatchOptions, watch_job
from amber.services.context import OperationContext


class WatchExtension:
    def __init__(self, run: RunOptions) -> None:
        self.run = run
        self._threads: list[tuple[threading.Thread, OperationContext]] = []

    def start(self, config: Config) -> None:
        for job in config.jobs.values():
            if not job.watch:
                continue
            ctx = self.run.context.child("watch", [job.name], repository=job.repository)
            options = WatchOptions(run=dataclasses.replace(self.run, context=ctx))
            thread = threading.Thread(target=self._watch, args=(config, job.name, options), daemon=True,
                                      name=f"watch-{job.name}")  # fmt: skip
            thread.start()
            self._threads.append((thread, ctx))
            self.run.context.events.notice("note", f"daemon: watching job {job.name}")

    def _watch(self, config: Config, name: str, options: WatchOptions) -> None:
        ctx = options.run.context
        try:
            watch_job(config, name, options)
        except Interrupted as exc:
            ctx.finish_with(exc)
        except AmberError as exc:  # one watcher's failure must not stop the daemon
            self.run.context.events.notice("note", f"daemon: watch {name}: {exc.message}")
            ctx.finish_with(exc)

    def tick(self, config: Config) -> None:
        """Nothing: a watcher that failed to start (say, a path that is gone) said so once."""

    def stop(self) -> None:
        for _thread, ctx in self._threads:
            ctx.cancel.cancel(Interrupted("the daemon is stopping"))
        for thread, _ctx in self._threads:
            thread.join(timeout=300)
