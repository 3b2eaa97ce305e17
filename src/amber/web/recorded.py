"""Live views of runs started by other processes: the state database's progress rows, polled.

The daemon, a systemd timer or a terminal records each running job's progress in
the state database (``ops.run.progress_log``); a dashboard started on its own reads
those rows once a second and shows them like the runs it started itself.
"""

from __future__ import annotations

import threading

from amber.errors import AmberError
from amber.ops.run.progress_log import ProgressLog
from amber.web.live import Runner

POLL_SECONDS = 1.0


class RecordedRuns:
    def __init__(self, runner: Runner, interval: float = POLL_SECONDS) -> None:
        self.runner, self.interval = runner, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        try:
            rows = ProgressLog(self.runner.config.state.path).running()
        except AmberError:  # no state database yet, or it is busy: next time
            return
        self.runner.show_recorded(rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="web-recorded-runs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
