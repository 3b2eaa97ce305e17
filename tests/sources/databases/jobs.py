"""Helpers for database tests: a config with one database job, and a writer that moves money."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

from amber.services import session
from tests.conftest import PASSWORD

ACCOUNTS = 20
START_BALANCE = 1000
TOTAL = ACCOUNTS * START_BALANCE


def job_config(tmp: Path, databases_toml: str, paths: list[str] | None = None) -> Path:
    """A repository ``main`` and job ``dbs`` with the given ``[[jobs.dbs.databases]]`` tables."""
    (tmp / "pass").write_text(PASSWORD + "\n")
    if not (tmp / "main").exists():
        session.create(str(tmp / "main"), PASSWORD.encode()).close()
    cfg = tmp / "config.toml"
    path_line = f"paths = {[str(p) for p in paths]!r}".replace("'", '"') if paths else ""
    cfg.write_text(f"""
[repositories.main]
url = "{tmp / "main"}"
password_file = "{tmp / "pass"}"

[jobs.dbs]
{path_line}
{databases_toml}
""")
    return cfg


class MoneyMover:
    """Moves random amounts between accounts in a loop, one transaction per transfer, until stopped."""

    def __init__(
        self, transfer: Callable[[int, int, int], None], close: Callable[[], object] = lambda: None
    ) -> None:
        self._transfer = transfer
        self._close = close
        self._stop = threading.Event()
        self.transfers = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        try:
            while not self._stop.is_set():
                a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
                self._transfer(a, b, rng.randint(1, 50))
                self.transfers += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> MoneyMover:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._close()  # e.g. let a client finish the transfers it was sent
        if self.error is not None:
            raise AssertionError(f"the writer failed: {self.error!r}")
