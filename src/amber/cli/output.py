"""Terminal and JSON output helpers, and the progress displays."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from amber.events import Events, Subscriber
from amber.printable import printable

# soft_wrap: never insert line breaks into messages (paths) when stderr is not a terminal.
err_console = Console(stderr=True, soft_wrap=True)


def show_path(path: bytes | str) -> str:
    """A printable field (path, host name, tag): undecodable bytes as \\x escapes, control
    characters (newlines and terminal escape sequences included) escaped."""
    text = path.decode("utf-8", "backslashreplace") if isinstance(path, bytes) else path
    return printable(text, keep="")


def safe_text(text: str) -> str:
    """Human output made harmless for a terminal: every control character except the
    line breaks and tabs of the message itself is escaped (ESC, CSI, BEL, CR ...)."""
    return printable(text)


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for every human-readable line: the one place output is escaped.

    JSON output goes through :func:`emit_json` (the encoder escapes control
    characters itself) and raw data (``dump``) is written as bytes.
    """
    click.echo(safe_text(str(message)), err=err, nl=nl)


def plain(text: str) -> str:
    """A message that may hold paths, made safe for ``err_console.print``.

    Undecodable bytes (surrogate escapes) become \\x escapes, control characters
    (newlines in names) are escaped, and ``[`` cannot start rich markup.
    """
    return escape(show_path(os.fsencode(text)))


def emit_json(obj: Any) -> None:
    emit_json_text(json.dumps(obj, ensure_ascii=False))


def emit_json_text(text: str) -> None:
    """One JSON document already encoded (control characters escaped by its encoder)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class CountingProgress(Subscriber):
    """Collects counters from worker threads; thread-safe. A subscriber of the operation's sink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = 0
        self.bytes = 0
        self.errors: list[tuple[str, str]] = []
        self.started = time.monotonic()

    def file_done(self, path: bytes, size: int, status: str) -> None:
        with self._lock:
            self.files += 1

    def bytes_done(self, n: int) -> None:
        with self._lock:
            self.bytes += n

    def error(self, path: bytes, message: str) -> None:
        with self._lock:
            self.errors.append((show_path(path), message))


class JsonProgress(CountingProgress):
    """Prints a status line every second and one per error."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)

    def __enter__(self) -> JsonProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def error(self, path: bytes, message: str) -> None:
        super().error(path, message)
        emit_json({"message_type": "error", "item": show_path(path), "error": message})

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            emit_json({
                "message_type": "status",
                "seconds_elapsed": round(time.monotonic() - self.started, 1),
                "files_done": self.files,
                "bytes_done": self.bytes,
            })  # fmt: skip


class BinarySpeedColumn(ProgressColumn):
    """Throughput in binary units (rich's own column is decimal: MB/s beside a summary in MiB)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")


class BarProgress(CountingProgress):
    """A rich progress bar: files, bytes, throughput and ETA once the total is known."""

    def __init__(self, description: str, total_bytes: int | None = None) -> None:
        super().__init__()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(binary_units=True),  # KiB/MiB/GiB, as every summary prints
            BinarySpeedColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        self._task = self._bar.add_task(description, total=total_bytes, files=0)

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def set_total(self, total: int) -> None:
        self._bar.update(self._task, total=total)

    def file_done(self, path: bytes, size: int, status: str) -> None:
        super().file_done(path, size, status)
        self._bar.update(self._task, files=self.files)

    def bytes_done(self, n: int) -> None:
        super().bytes_done(n)
        self._bar.update(self._task, completed=self.bytes)


@contextlib.contextmanager
def showing(events: Events, display: Any) -> Iterator[None]:
    """Show ``display`` (a progress display, or None for none) fed by the operation's sink while inside."""
    if display is None:
        yield
        return
    with display:
        unsubscribe = events.subscribe(display)
        try:
            yield
        finally:
            unsubscribe()


def scan_total(paths: list[str], progress: BarProgress) -> threading.Thread:
    """Count bytes to back up in the background so the bar can show an ETA."""

    def run() -> None:
        total = 0
        for top in paths:
            for root, _dirs, files in os.walk(top):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(root, f)).st_size
        progress.set_total(total)

    t = threading.Thread(target=run, daemon=True, name="scanner")
    t.start()
    return t


def echo_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows (the first is the header) in columns as wide as their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def quantity(n: int, noun: str, plural: str = "") -> str:
    """``1 snapshot``, ``2 snapshots``; ``plural`` for irregular nouns (``1 match``, ``2 matches``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"
