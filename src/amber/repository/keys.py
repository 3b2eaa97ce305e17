"""Key files: the master key wrapped by passphrase-derived keys.

A key file is JSON (it must be readable before any key is known)::

    {"version": 1, "created": ..., "hostname": ..., "username": ...,
     "kdf": "argon2id", "kdf_params": {"time_cost", "memory_kib", "parallelism"},
     "salt": base64, "data": base64(nonce || AES-GCM(master key JSON))}

Its stored name is the SHA-256 of its bytes. An append-only key carries
``"append_only": true`` inside the sealed secret (authoritative) and, for display,
in the clear.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass

from argon2.exceptions import Argon2Error

from amber.errors import IntegrityError, UsageError, WrongPassword, is_native_panic
from amber.repository.crypto import (
    InvalidTag,
    KdfParams,
    MasterKey,
    derive_wrapping_key,
    seal,
    unseal,
)
from amber.repository.limits import (
    MAX_KDF_MEMORY_KIB,
    MAX_KDF_PARALLELISM,
    MAX_KDF_TIME_COST,
    MAX_KDF_WORK_KIB,
    OBJECT_LIMITS,
)
from amber.storage.base import Backend, FileInfo, FileType, Handle
from amber.storage.layout import format_size, too_large


@dataclass(frozen=True)
class KeyInfo:
    id: str
    created: str
    hostname: str
    username: str
    append_only: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def wrap_master_key(
    master: MasterKey, password: bytes, params: KdfParams | None = None, append_only: bool = False
) -> tuple[str, bytes]:
    """Return (key file name, key file bytes)."""
    params = params or KdfParams()
    problem = kdf_problem(params)
    if problem:  # readers would refuse the key: never write one
        raise UsageError(f"key derivation cost refused: {problem}")
    salt = os.urandom(16)
    wrapping = derive_wrapping_key(password, salt, params)
    fields: dict[str, object] = {"encrypt": _b64(master.encrypt_key), "id": _b64(master.id_key)}
    if append_only:
        fields["append_only"] = True
    secret = json.dumps(fields).encode()
    doc: dict[str, object] = {
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "hostname": socket.gethostname(),
        "username": getpass.getuser(),
        "kdf": "argon2id",
        "kdf_params": asdict(params),
        "salt": _b64(salt),
        "data": _b64(seal(wrapping, secret)),
    }
    if append_only:
        doc["append_only"] = True
    raw = json.dumps(doc, indent=1).encode()
    return hashlib.sha256(raw).hexdigest(), raw


def kdf_problem(params: KdfParams) -> str | None:
    """Why argon2id with ``params`` is refused (design §4), or None.

    Each bound leaves a wide margin over the default (t=4, m=32 MiB, p=2), and the
    memory is held to half of this machine's RAM: a key file with an absurd cost
    fails at once with this reason instead of hanging or exhausting every open.
    """
    t, m, p = params.time_cost, params.memory_kib, params.parallelism
    if not all(type(v) is int and v > 0 for v in (t, m, p)):
        return "time cost, memory and parallelism must be positive whole numbers"
    if t > MAX_KDF_TIME_COST:
        return f"time cost {t} is over {MAX_KDF_TIME_COST}"
    if p > MAX_KDF_PARALLELISM:
        return f"parallelism {p} is over {MAX_KDF_PARALLELISM}"
    memory = min(MAX_KDF_MEMORY_KIB, _ram_kib() // 2)
    if m > memory:
        return f"memory {format_size(m * 1024)} is over {format_size(memory * 1024)}"
    if t * m > MAX_KDF_WORK_KIB:
        work = format_size(MAX_KDF_WORK_KIB * 1024)
        return f"time cost x memory ({t} x {format_size(m * 1024)}) is over {work}"
    return None


def _ram_kib() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1024
    except (ValueError, OSError, AttributeError):  # unknown here: only the fixed bound applies
        return 2 * MAX_KDF_MEMORY_KIB


def _parse(raw: bytes) -> dict[str, object]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting thousands deep
        raise IntegrityError("key file is not valid JSON") from exc
    if not isinstance(doc, dict) or doc.get("kdf") != "argon2id":
        raise IntegrityError("unsupported key file")
    return doc


def unwrap_master_key(raw: bytes, password: bytes) -> MasterKey:
    """Open one key file; raise WrongPassword if the password does not fit."""
    return unwrap_key(raw, password)[0]


def unwrap_key(raw: bytes, password: bytes) -> tuple[MasterKey, bool]:
    """Open one key file: (master key, whether the key is append-only)."""
    doc = _parse(raw)
    try:
        params = KdfParams(**doc["kdf_params"])  # type: ignore[arg-type]
        salt = base64.b64decode(str(doc["salt"]))
        sealed = base64.b64decode(str(doc["data"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError("malformed key file") from exc
    problem = kdf_problem(params)
    if problem:
        raise IntegrityError(f"key file has unusable KDF parameters: {problem}")
    try:
        wrapping = derive_wrapping_key(password, salt, params)
    except (Argon2Error, MemoryError, OverflowError, ValueError) as exc:
        raise IntegrityError(f"key file has unusable KDF parameters: {exc}") from exc
    try:
        secret = json.loads(unseal(wrapping, sealed))
    except InvalidTag as exc:
        raise WrongPassword() from exc
    except (ValueError, RecursionError) as exc:
        raise IntegrityError("key file: the sealed secret is malformed") from exc
    except BaseException as exc:
        if not is_native_panic(exc):
            raise
        raise IntegrityError(f"key file cannot be opened: {exc}") from exc
    try:
        master = MasterKey(base64.b64decode(secret["encrypt"]), base64.b64decode(secret["id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError("key file: the sealed secret is malformed") from exc
    return master, isinstance(secret, dict) and secret.get("append_only") is True


def load_key_file(backend: Backend, fi: FileInfo) -> bytes:
    """A key file's bytes; over the size limit (by its listed size or as read) is ObjectTooLarge."""
    handle, limit = Handle(FileType.KEY, fi.name), OBJECT_LIMITS[FileType.KEY]
    if fi.size > limit:
        raise too_large(handle, limit, fi.size)
    return backend.load(handle, limit=limit)


def describe_key(name: str, raw: bytes) -> KeyInfo:
    doc = _parse(raw)
    return KeyInfo(
        id=name,
        created=str(doc.get("created", "")),
        hostname=str(doc.get("hostname", "")),
        username=str(doc.get("username", "")),
        append_only=doc.get("append_only") is True,
    )
