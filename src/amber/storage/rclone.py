"""``rclone:remote:path``: any of rclone's ~70 storage systems, by driving the rclone binary.

As restic does, amber starts ``rclone serve restic remote:path`` as a child process
and talks restic's REST protocol to it (:mod:`amber.storage.rest`). The child
listens on a random loopback port, with a random user and password so no other
local user can reach it (passed as ``RCLONE_USER``/``RCLONE_PASS`` in its
environment, never on its command line), and is stopped by ``close`` (or when
amber exits).
Remotes are configured the rclone way: ``rclone config`` or ``RCLONE_CONFIG_*``
environment variables.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator

from amber.childenv import child_env
from amber.errors import StorageError, UsageError
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.rest import RestBackend

_SERVING = re.compile(rb"Serving restic REST API on (https?://\S+)")
START_TIMEOUT = 60.0


class RcloneBackend:
    def __init__(
        self, remote_path: str, *, connections: int = 5, program: str = "rclone",
        extra_args: list[str] | None = None,
    ) -> None:  # fmt: skip
        self.remote_path = remote_path
        self.location = f"rclone:{remote_path}"
        self._program = program
        self._extra_args = extra_args or []
        self._connections = connections
        self._proc: subprocess.Popen[bytes] | None = None
        self._rest: RestBackend | None = None
        self._lock = threading.Lock()

    def _server(self) -> RestBackend:
        """Start rclone on first use (creating a backend must not spawn processes)."""
        with self._lock:
            if self._rest is None:
                self._rest = self._start()
            return self._rest

    def _start(self) -> RestBackend:
        exe = shutil.which(self._program)
        if exe is None:
            raise UsageError(f"rclone backend: program {self._program!r} not found; install rclone")
        user, password = secrets.token_hex(8), secrets.token_hex(16)
        cmd = [exe, "serve", "restic", self.remote_path, "--addr", "127.0.0.1:0", "--cache-objects=false",
               *self._extra_args]  # fmt: skip
        # The server's credentials go through its environment (readable by this user and
        # root only), never argv: /proc/PID/cmdline is world-readable.
        env = child_env({"RCLONE_USER": user, "RCLONE_PASS": password})
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True, env=env)  # fmt: skip
        except OSError as exc:
            raise StorageError(f"rclone backend: cannot start {exe}: {exc.strerror}") from exc
        lines: queue.Queue[bytes] = queue.Queue()

        def pump() -> None:  # rclone's stderr: the address first, errors later; never let the pipe fill
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.put(line)
            lines.put(b"")

        threading.Thread(target=pump, name="rclone-stderr", daemon=True).start()
        seen: list[bytes] = []
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                line = b""
            match = _SERVING.search(line)
            if match:
                break
            if not line:
                _stop(proc)
                tail = b" ".join(s.strip() for s in seen[-3:]).decode(errors="replace")
                raise StorageError(f"rclone serve restic {self.remote_path} failed to start: {tail}")
            seen.append(line)
        self._proc = proc
        atexit.register(_stop, proc)
        url = match.group(1).decode().replace("://", f"://{user}:{password}@", 1)
        return RestBackend(url, connections=self._connections)

    def create(self) -> None:
        self._server().create()

    def exists(self) -> bool:
        return self._server().exists()

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        self._server().save(handle, data)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        return self._server().load(handle, offset, length, limit=limit)

    def stat(self, handle: Handle) -> FileInfo:
        return self._server().stat(handle)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        return self._server().list(type)

    def remove(self, handle: Handle) -> None:
        self._server().remove(handle)

    def close(self) -> None:
        with self._lock:
            if self._rest is not None:
                self._rest.close()
                self._rest = None
            if self._proc is not None:
                _stop(self._proc)
                self._proc = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
