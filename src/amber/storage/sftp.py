"""A repository on an SFTP server (paramiko), set up the way ``ssh`` would be.

``~/.ssh/config`` supplies HostName, User, Port, IdentityFile, UserKnownHostsFile,
StrictHostKeyChecking and ProxyCommand for the host; keys come from IdentityFile,
ssh-agent and the default key files. An unknown host key is refused unless
``-o sftp.accept-new-host-key=true`` (or ``StrictHostKeyChecking accept-new``) is
set; a changed host key is always refused.

Saves write ``.tmp-<name>-<hex>`` and rename it over the name with the
posix-rename@openssh.com extension, so readers see whole files only. The
archiver saves from several threads: each request borrows one of at most
``connections`` SSH connections from a pool.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import getpass
import logging
import os
import queue
import secrets
import socket
import stat as statmod
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko

from amber.errors import (
    AmberError,
    ObjectNotFound,
    PermissionDenied,
    StorageError,
    TransientStorageError,
    from_os_error,
)
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import (
    NAMED_TYPES,
    TMP_PREFIX,
    bounded_length,
    describe,
    fanout_dirs,
    list_config,
    object_path,
)

logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False  # its transport thread logs socket errors we report ourselves

_CONNECTION_ERRORS = (EOFError, paramiko.SSHException, ConnectionError, TimeoutError, socket.timeout)
_PIECE = 32 * 1024  # paramiko's SFTP request size; larger reads go as pipelined pieces
# Writes go in larger requests: a pack then takes 8x fewer requests and status replies.
# OpenSSH's sftp-server takes messages up to 256 KiB.
_WRITE_REQUEST = 128 * 1024


class _UnknownHostKey(Exception):
    pass


_GCM = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class _GcmFirstTransport(paramiko.Transport):
    """Prefer AES-GCM when the server offers it: one AEAD call per packet instead of
    AES-CTR plus a Python-level HMAC, on both ends (the other ciphers stay, in order)."""

    _preferred_ciphers = _GCM + tuple(
        c for c in paramiko.Transport._preferred_ciphers  # type: ignore[attr-defined]
        if c not in _GCM
    )  # fmt: skip


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _UnknownHostKey(f"{hostname} ({key.get_name()} {key.get_fingerprint().hex()})")


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=accept-new: remember a new host, still refuse a changed key."""

    def __init__(self, save_to: str | None) -> None:
        self.save_to = save_to

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.save_to:
            with contextlib.suppress(OSError):
                Path(self.save_to).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with open(self.save_to, "a", encoding="ascii") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class _Connection:
    def __init__(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient) -> None:
        self.client = client
        self.sftp = sftp

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sftp.close()
        with contextlib.suppress(Exception):
            self.client.close()


class SftpBackend:
    def __init__(
        self,
        host: str,
        path: str,
        *,
        user: str | None = None,
        port: int | None = None,
        connections: int = 5,
        accept_new_host_key: bool = False,
        ssh_config: str | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        config_path = Path(ssh_config or "~/.ssh/config").expanduser()
        entry: dict[str, Any] = {}
        if config_path.is_file():
            try:
                entry = dict(paramiko.SSHConfig.from_path(str(config_path)).lookup(host))
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise StorageError(f"cannot read {config_path}: {exc}") from exc
        self.hostname = str(entry.get("hostname", host))
        self.user = user or str(entry.get("user", "")) or getpass.getuser()
        self.port = port or int(entry.get("port", 22))
        self.identity_files = [str(Path(p).expanduser()) for p in entry.get("identityfile", [])]
        known = str(entry.get("userknownhostsfile", "~/.ssh/known_hosts ~/.ssh/known_hosts2"))
        self.known_hosts = [str(Path(p).expanduser()) for p in known.split()]
        strict = str(entry.get("stricthostkeychecking", "ask")).lower()
        self.accept_new = accept_new_host_key or strict in ("accept-new", "no", "off")
        self.proxy_command = entry.get("proxycommand")
        self.connect_timeout = connect_timeout
        self.root = path.rstrip("/") or "/"
        shown_path = self.root if self.root.startswith("/") else "/" + self.root
        port_part = f":{self.port}" if self.port != 22 else ""
        self.location = f"sftp://{self.user}@{host}{port_part}/{shown_path}".replace("///", "//")
        self._max = max(1, connections)
        self._idle: queue.LifoQueue[_Connection] = queue.LifoQueue()
        self._count = 0
        self._lock = threading.Lock()
        self._closed = False

    # -- connections ----------------------------------------------------------------
    def _connect(self) -> _Connection:
        client = paramiko.SSHClient()
        with contextlib.suppress(OSError):
            client.load_system_host_keys()
        for f in self.known_hosts:
            if os.path.isfile(f):
                client.load_host_keys(f)
        save_to = next((f for f in self.known_hosts if os.path.isfile(f)), self.known_hosts[0])
        policy = _AcceptNew(save_to) if self.accept_new else _RejectUnknown()
        client.set_missing_host_key_policy(policy)
        where = f"{self.user}@{self.hostname}:{self.port}"
        try:
            sock = paramiko.ProxyCommand(str(self.proxy_command)) if self.proxy_command else None
            client.connect(
                self.hostname, self.port, self.user,
                key_filename=self.identity_files or None,  # type: ignore[arg-type]  # a list works
                look_for_keys=not self.identity_files,
                allow_agent=True, timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout, sock=sock,  # type: ignore[arg-type]
                transport_factory=_GcmFirstTransport,  # type: ignore[arg-type]
            )  # fmt: skip
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.connect_timeout * 4)  # a stalled server fails a request
        except _UnknownHostKey as exc:
            client.close()
            raise StorageError(
                f"sftp: host key of {exc} is not in known_hosts; connect once with ssh to check it, "
                "or pass -o sftp.accept-new-host-key=true"
            ) from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise StorageError(
                f"sftp: HOST KEY OF {self.hostname} HAS CHANGED (it is not the one in known_hosts); "
                "refusing to connect"
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise PermissionDenied(f"sftp: authentication as {where} failed: {exc}") from exc
        except socket.gaierror as exc:
            client.close()
            raise StorageError(f"sftp: unknown host {self.hostname}: {exc.strerror}") from exc
        except (*_CONNECTION_ERRORS, OSError) as exc:
            client.close()
            raise TransientStorageError(f"sftp: cannot connect to {where}: {exc}") from exc
        return _Connection(client, sftp)

    def _checkout(self) -> _Connection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                with self._lock:
                    grow = self._count < self._max
                    if grow:
                        self._count += 1
                if grow:
                    try:
                        return self._connect()
                    except BaseException:
                        with self._lock:
                            self._count -= 1
                        raise
                try:  # wake up now and then: a discarded connection frees room to grow
                    conn = self._idle.get(timeout=0.5)
                except queue.Empty:
                    continue
            if conn.alive():
                return conn
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        with self._lock:
            self._count -= 1

    @contextlib.contextmanager
    def _sftp(self, what: str) -> Iterator[paramiko.SFTPClient]:
        conn = self._checkout()
        try:
            yield conn.sftp
        except AmberError:
            self._idle.put(conn)
            raise
        except _CONNECTION_ERRORS as exc:
            self._discard(conn)
            raise TransientStorageError(
                f"sftp: {what}: connection failed: {exc or type(exc).__name__}"
            ) from exc
        except FileNotFoundError as exc:
            self._idle.put(conn)
            raise ObjectNotFound(f"{what} does not exist") from exc
        except OSError as exc:
            self._idle.put(conn)
            if exc.errno is None:  # SSH_FX_FAILURE: the server gives no reason
                raise StorageError(f"sftp: {what}: {exc}") from exc
            raise from_os_error(exc, what) from exc
        except BaseException:
            self._discard(conn)
            raise
        else:
            self._idle.put(conn)

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root != "/" else f"/{rel}"

    # -- Backend ----------------------------------------------------------------------
    def create(self) -> None:
        with self._sftp("create") as sftp:
            self._mkdirs(sftp, self.root)
            for d in [t.value for t in NAMED_TYPES] + fanout_dirs():
                self._mkdir(sftp, self._abs(d))

    @staticmethod
    def _mkdir(sftp: paramiko.SFTPClient, path: str) -> None:
        try:
            sftp.mkdir(path, 0o700)
        except OSError:
            if not statmod.S_ISDIR(sftp.stat(path).st_mode or 0):  # it exists (or the real error)
                raise

    def _mkdirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        current = "/" if path.startswith("/") else ""
        for part in parts:
            current = f"{current}{part}" if current in ("", "/") else f"{current}/{part}"
            try:
                sftp.stat(current)
            except FileNotFoundError:
                self._mkdir(sftp, current)

    def exists(self) -> bool:
        with self._sftp("config") as sftp:
            try:
                return statmod.S_ISREG(sftp.stat(self._abs("config")).st_mode or 0)
            except FileNotFoundError:
                return False

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        path = self._abs(object_path(handle))
        directory, _, name = path.rpartition("/")
        tmp = f"{directory}/{TMP_PREFIX}{name}-{secrets.token_hex(4)}"
        with self._sftp(describe(handle)) as sftp:
            try:
                try:
                    f = sftp.open(tmp, "wb")
                except FileNotFoundError:
                    self._mkdirs(sftp, directory)
                    f = sftp.open(tmp, "wb")
                with f:
                    f.MAX_REQUEST_SIZE = _WRITE_REQUEST  # type: ignore[misc]
                    f.set_pipelined(True)
                    f.chmod(0o600)
                    f.write(bytes(data) if isinstance(data, memoryview) else data)
                try:
                    sftp.posix_rename(tmp, path)
                except OSError as exc:
                    if "posix-rename" not in str(exc) and "Operation unsupported" not in str(exc):
                        raise
                    with contextlib.suppress(FileNotFoundError):  # a server without the extension
                        sftp.remove(path)
                    sftp.rename(tmp, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        path = self._abs(object_path(handle))
        with self._sftp(describe(handle)) as sftp, sftp.open(path, "rb") as f:
            if length is None or length > _PIECE or limit is not None:
                length = bounded_length(handle, f.stat().st_size or 0, offset, length, limit)
            if length == 0:
                return b""
            if length <= _PIECE:
                f.seek(offset)
                return f.read(length)
            # many small pieces: paramiko joins a large read quadratically; readv pipelines requests
            end = offset + length
            pieces = [(o, min(_PIECE, end - o)) for o in range(offset, end, _PIECE)]
            return b"".join(f.readv(pieces))

    def stat(self, handle: Handle) -> FileInfo:
        path = self._abs(object_path(handle))
        with self._sftp(describe(handle)) as sftp:
            st = sftp.stat(path)
        if not statmod.S_ISREG(st.st_mode or 0):
            raise ObjectNotFound(f"{describe(handle)} does not exist")
        return FileInfo(handle.name, st.st_size or 0)

    def list(self, type: FileType) -> Iterator[FileInfo]:
        if type is FileType.CONFIG:
            yield from list_config(self)
            return
        top = self._abs(type.value)
        with self._sftp(type.value) as sftp:
            entries = self._entries(sftp, top)
        if type is not FileType.PACK:
            yield from (
                FileInfo(e.filename, e.st_size or 0) for e in entries if statmod.S_ISREG(e.st_mode or 0)
            )
            return
        subdirs = [
            f"{top}/{e.filename}" for e in entries if statmod.S_ISDIR(e.st_mode or 0) and len(e.filename) == 2
        ]

        def list_subdir(path: str) -> builtins.list[FileInfo]:
            with self._sftp(type.value) as sftp:
                return [
                    FileInfo(e.filename, e.st_size or 0)
                    for e in self._entries(sftp, path)
                    if statmod.S_ISREG(e.st_mode or 0)
                ]

        # 256 directories: one round trip each, spread over the connection pool
        with concurrent.futures.ThreadPoolExecutor(self._max, thread_name_prefix="amber-sftp-list") as pool:
            for found in pool.map(list_subdir, subdirs):
                yield from found

    @staticmethod
    def _entries(sftp: paramiko.SFTPClient, path: str) -> builtins.list[paramiko.SFTPAttributes]:
        try:
            return [e for e in sftp.listdir_attr(path) if not e.filename.startswith(".")]
        except FileNotFoundError:
            return []

    def remove(self, handle: Handle) -> None:
        path = self._abs(object_path(handle))
        with self._sftp(describe(handle)) as sftp:
            sftp.remove(path)

    def close(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(conn)
