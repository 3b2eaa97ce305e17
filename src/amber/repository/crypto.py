"""Encryption, blob IDs and key derivation. Pure functions, no I/O.

* AEAD: AES-256-GCM, a fresh random 96-bit nonce per message;
  ciphertext layout ``nonce(12) || ct || tag(16)``. Associated data (what an
  object is bound to, ``sealing.py``) is optional: format 1 has none.
* Blob IDs: keyed BLAKE3 (32 bytes) of the plaintext, so IDs reveal nothing
  to someone without the key, yet dedup works across files, hosts and snapshots.
* Passphrase KDF: argon2id; its parameters are stored in each key file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from amber.errors import IntegrityError, is_native_panic

NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
ID_SIZE = 32
# cryptography's AEAD takes at most 2**31 - 1 bytes; longer input panics in Rust (and
# prints to stderr) instead of raising, so it is refused before the call.
MAX_MESSAGE = 2**31 - 1


@dataclass(frozen=True)
class KdfParams:
    # OWASP's argon2id floor is 19 MiB x 2 passes; 32 MiB x 4 passes costs an attacker
    # more per guess while keeping a client's peak memory near restic's scrypt.
    time_cost: int = 4
    memory_kib: int = 32 * 1024
    parallelism: int = 2


class MasterKey:
    """The repository secret: an encryption key and an ID (MAC) key."""

    __slots__ = ("_aead", "_id_hasher", "chunker_seed", "encrypt_key", "id_key")

    def __init__(self, encrypt_key: bytes, id_key: bytes) -> None:
        if len(encrypt_key) != 32 or len(id_key) != 32:
            raise ValueError("keys must be 32 bytes")
        self.encrypt_key = encrypt_key
        self.id_key = id_key
        self._aead = AESGCM(encrypt_key)
        self._id_hasher = blake3.blake3(key=id_key)  # copied per ID: cheaper than keying anew
        # 64-bit gear-table seed: boundaries depend on the key, not just the content.
        seed_bytes = blake3.blake3(id_key, derive_key_context="amber chunker seed v1").digest(8)
        self.chunker_seed = (int.from_bytes(seed_bytes, "little") & ((1 << 63) - 1)) or 1

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(32), os.urandom(32))

    def encrypt(self, plaintext: bytes | memoryview, ad: bytes | None = None) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, ad)

    def decrypt(self, ciphertext: bytes | memoryview, ad: bytes | None = None) -> bytes:
        _check_length(len(ciphertext))
        view = memoryview(ciphertext)
        try:
            return self._aead.decrypt(bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], ad)
        except InvalidTag as exc:
            raise IntegrityError("authentication failed: data was modified or damaged") from exc
        except BaseException as exc:
            raise native_error(exc, "decryption") from exc

    def encrypt_into(self, plaintext: bytes | memoryview, out: memoryview, ad: bytes | None = None) -> None:
        """Like :meth:`encrypt`, into ``out`` (exactly ``len(plaintext) + OVERHEAD`` bytes).

        Spares allocating, zeroing and copying the result (large blobs: a copy).
        """
        nonce = os.urandom(NONCE_SIZE)
        out[:NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, plaintext, ad, out[NONCE_SIZE:])

    def decrypt_into(self, ciphertext: bytes | memoryview, out: memoryview, ad: bytes | None = None) -> None:
        """Like :meth:`decrypt`, into ``out`` (exactly ``len(ciphertext) - OVERHEAD`` bytes)."""
        _check_length(len(ciphertext))
        view = memoryview(ciphertext)
        try:
            self._aead.decrypt_into(bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], ad, out)
        except InvalidTag as exc:
            raise IntegrityError("authentication failed: data was modified or damaged") from exc
        except BaseException as exc:
            raise native_error(exc, "decryption") from exc

    def blob_id(self, plaintext: bytes | memoryview) -> bytes:
        hasher = self._id_hasher.copy()
        try:
            hasher.update(plaintext)
        except BaseException as exc:
            raise native_error(exc, "hashing") from exc
        return hasher.digest()


def _check_length(n: int) -> None:
    if n < OVERHEAD:
        raise IntegrityError("ciphertext too short")
    if n > MAX_MESSAGE:
        raise IntegrityError(f"ciphertext of {n} bytes is too long to be one of amber's")


def native_error(exc: BaseException, what: str) -> BaseException:
    """The error to raise for ``exc`` from cryptography or blake3 on untrusted input.

    Their pyo3 ``PanicException`` is a BaseException that would escape every handler
    as a traceback; it and the errors they raise for bad sizes become IntegrityError.
    Anything else (KeyboardInterrupt, ...) is returned unchanged, to be re-raised.
    """
    if is_native_panic(exc) or isinstance(exc, (OverflowError, ValueError)):
        return IntegrityError(f"{what} failed on malformed input: {type(exc).__name__}: {exc}")
    return exc


def derive_wrapping_key(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def seal(key: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def unseal(key: bytes, sealed: bytes) -> bytes:
    """Decrypt with a one-off key; raises InvalidTag on a wrong key."""
    if not OVERHEAD <= len(sealed) <= MAX_MESSAGE:
        raise InvalidTag()
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], None)
    except InvalidTag:
        raise
    except BaseException as exc:
        raise native_error(exc, "decryption") from exc


__all__ = [
    "ID_SIZE",
    "OVERHEAD",
    "InvalidTag",
    "KdfParams",
    "MasterKey",
    "derive_wrapping_key",
    "seal",
    "unseal",
]
