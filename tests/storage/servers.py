"""Real storage servers on loopback, started by the tests themselves.

- :func:`start_sshd`: OpenSSH's sshd with a fresh host key and user key (``internal-sftp``).
- :func:`start_moto`: moto's standalone S3 server (supports Object Lock).
- :func:`start_rest`: ``rclone serve restic`` (restic's REST protocol).

Session-scoped fixtures wrapping them are at the bottom; another test directory
can use them with ``from tests.storage.servers import sshd_server  # noqa: F401``
in its conftest.py. Each fixture skips when its program is missing (scripts/test.sh
installs them all).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from amber.storage.s3 import S3Settings

MOTO_KEYS = {"AWS_ACCESS_KEY_ID": "amber-test", "AWS_SECRET_ACCESS_KEY": "amber-test-secret",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see its log file")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def _log(base: Path, name: str) -> int:
    """A log file for a server's stderr (a pipe nobody reads would fill up and stall it)."""
    base.mkdir(parents=True, exist_ok=True)
    return os.open(base / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- OpenSSH ------------------------------------------------------------------------------


@dataclass
class SshServer:
    port: int
    user: str
    alias: str  # a Host entry in ssh_config
    home: Path  # a HOME whose .ssh/config and known_hosts point at this server
    ssh_config: Path
    known_hosts: Path
    identity: Path
    proc: subprocess.Popen[bytes]

    def url(self, path: Path | str) -> str:
        """``sftp://alias//abs/path`` (absolute path, restic's double slash)."""
        return f"sftp://{self.alias}/{path}"

    def env(self) -> dict[str, str]:
        """Environment for a child amber: HOME with the ssh setup, no agent."""
        return {"HOME": str(self.home), "SSH_AUTH_SOCK": ""}


def start_sshd(base: Path) -> SshServer:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or not shutil.which("ssh-keygen"):
        pytest.skip("OpenSSH server not installed (scripts/test.sh installs openssh-server)")
    base.mkdir(parents=True, exist_ok=True)
    host_key, user_key = base / "host_ed25519", base / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = base / "authorized_keys"
    shutil.copy(user_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port, user = free_port(), getpass.getuser()
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        f"PidFile {base / 'sshd.pid'}\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {user}\nSubsystem sftp internal-sftp\n"
        "LogLevel ERROR\nMaxSessions 50\nMaxStartups 50:30:100\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=_log(base, "sshd"))  # fmt: skip
    wait_for_port(port, proc, "sshd")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    known_hosts = home / ".ssh" / "known_hosts"
    pub = host_key.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    alias = "amber-test-sftp"
    ssh_config = home / ".ssh" / "config"
    ssh_config.write_text(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {user_key}\n"
        f"  UserKnownHostsFile {known_hosts}\n"
    )
    return SshServer(port, user, alias, home, ssh_config, known_hosts, user_key, proc)


# -- moto (S3) ------------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return dict(MOTO_KEYS)

    def client(self) -> Any:
        """A plain boto3 client, to look at the server behind amber's back."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=MOTO_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=MOTO_KEYS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def settings(self, **kwargs: Any) -> S3Settings:
        from amber.storage.s3 import S3Settings

        keys = {"access_key": MOTO_KEYS["AWS_ACCESS_KEY_ID"]}
        keys["secret_key"] = MOTO_KEYS["AWS_SECRET_ACCESS_KEY"]
        return S3Settings(**{**keys, **kwargs})

    def new_bucket(self, object_lock: bool = False) -> str:
        name = f"amber-{uuid.uuid4().hex[:16]}"
        client = self.client()
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        client.close()
        return name


def start_moto(base: Path) -> S3Server:
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto[server] not installed (pip install -e '.[test]')")
    port = free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=_log(base, "moto"), env=env, cwd=base)  # fmt: skip
    wait_for_port(port, proc, "moto_server")
    return S3Server(f"http://127.0.0.1:{port}", proc)


# -- rclone serve restic (REST) ---------------------------------------------------------------


@dataclass
class RestServer:
    url: str  # http://127.0.0.1:PORT/
    root: Path  # where the repositories land on disk
    proc: subprocess.Popen[bytes]

    def repo_url(self) -> str:
        return f"rest:{self.url}{uuid.uuid4().hex[:12]}/"


def start_rest(base: Path) -> RestServer:
    exe = shutil.which("rclone")
    if exe is None:
        pytest.skip("rclone not installed (scripts/test.sh installs it)")
    root = base / "rest-root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([exe, "serve", "restic", str(root), "--addr", f"127.0.0.1:{port}",
                             "--cache-objects=false"], stdout=subprocess.DEVNULL, stderr=_log(base, "rclone"),
                            env={**os.environ, "RCLONE_CONFIG": str(base / "rclone.conf")})  # fmt: skip
    wait_for_port(port, proc, "rclone serve restic")
    return RestServer(f"http://127.0.0.1:{port}/", root, proc)


def rclone_env(base: Path) -> dict[str, str]:
    """An rclone remote named ``amberlocal`` (type local), configured by environment only."""
    return {"RCLONE_CONFIG": str(base / "rclone.conf"), "RCLONE_CONFIG_AMBERLOCAL_TYPE": "local"}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="session")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestServer]:
    server = start_rest(tmp_path_factory.mktemp("rest"))
    yield server
    stop(server.proc)
