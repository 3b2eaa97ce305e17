"""rclone: the server's credentials never reach argv, and a server-side append-only mode holds.

* ``/proc/PID/cmdline`` is readable by every local user; the rclone child's
  password lives in its environment (readable only by its user and root).
* An append-only key only restrains an honest client (design §21). A server
  started with ``rclone serve restic --append-only`` refuses deletes from any
  client, so forget and prune fail cleanly and every snapshot stays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from amber.errors import PermissionDenied
from amber.storage.base import FileType, Handle
from amber.storage.rclone import RcloneBackend
from amber.storage.rest import RestBackend
from tests.conftest import AmberCli
from tests.storage.servers import free_port, rclone_env, stop, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")


def _proc_file(pid: int, name: str) -> list[bytes]:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read().split(b"\0")


def test_rclone_password_is_not_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in rclone_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AMBER_PASSWORD", "amber-secret-never-in-children")
    backend = RcloneBackend(f"amberlocal:{tmp_path / 'repo'}")
    try:
        backend.create()
        assert list(backend.list(FileType.SNAPSHOT)) == []
        proc = backend._proc
        assert proc is not None
        cmdline = _proc_file(proc.pid, "cmdline")
        environ = dict(e.split(b"=", 1) for e in _proc_file(proc.pid, "environ") if b"=" in e)
        password = environ[b"RCLONE_PASS"]
        assert len(password) >= 16
        assert not any(password in arg for arg in cmdline), cmdline
        assert b"--pass" not in cmdline and b"--user" not in cmdline
        assert b"AMBER_PASSWORD" not in environ  # the child gets the scrubbed environment
    finally:
        backend.close()


@pytest.fixture
def append_only_server(tmp_path: Path) -> Iterator[str]:
    """``rclone serve restic --append-only`` with basic auth; yields a rest: URL for one repository."""
    port = free_port()
    root = tmp_path / "server-root"
    root.mkdir()
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf"), "RCLONE_USER": "backup",
           "RCLONE_PASS": "s3cr3t-pass"}  # fmt: skip
    proc = subprocess.Popen(
        ["rclone", "serve", "restic", str(root), "--addr", f"127.0.0.1:{port}", "--append-only",
         "--cache-objects=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, "rclone serve restic --append-only")
        yield f"rest:http://backup:s3cr3t-pass@127.0.0.1:{port}/repo/"
    finally:
        stop(proc)


@pytest.mark.slow  # about ten CLI runs against a real server
def test_server_side_append_only_refuses_forget_and_prune(
    tmp_path: Path, append_only_server: str
) -> None:  # fmt: skip
    cli = AmberCli(Path(append_only_server), tmp_path)
    cli.env["AMBER_REPOSITORY"] = append_only_server
    cli.run("init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_bytes(b"keep me\n")
    cli.run("backup", str(src))
    (src / "f.txt").write_bytes(b"keep me too\n")
    cli.run("backup", str(src))
    before = cli.run("snapshots", "--json").stdout

    forget = cli.run("forget", "--keep-last", "1", "--prune", check=False)
    assert forget.returncode == PermissionDenied.exit_code
    lines = [line for line in forget.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "403 (Forbidden)" in lines[0], forget.stderr
    assert "s3cr3t-pass" not in forget.stderr + forget.stdout

    prune = cli.run("prune", check=False)  # nothing unreferenced: the server kept every snapshot
    assert prune.returncode == 0 and "Traceback" not in prune.stderr
    assert "s3cr3t-pass" not in prune.stderr + prune.stdout

    # a compromised client skips amber's checks and talks to the server directly: still refused
    direct = RestBackend(append_only_server.removeprefix("rest:"))
    try:
        names = [fi.name for fi in direct.list(FileType.SNAPSHOT)]
        with pytest.raises(PermissionDenied):
            direct.remove(Handle(FileType.SNAPSHOT, names[0]))
        with pytest.raises(PermissionDenied):
            direct.remove(Handle(FileType.KEY, next(fi.name for fi in direct.list(FileType.KEY))))
    finally:
        direct.close()
    assert cli.run("snapshots", "--json").stdout == before  # nothing was deleted
    cli.run("check")
