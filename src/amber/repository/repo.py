"""The repository: config, keys, snapshots, trees and blobs over a backend."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import msgspec

from amber import __version__
from amber.cancel import CancelToken
from amber.errors import (
    AmberError,
    AppendOnlyViolation,
    IntegrityError,
    ObjectNotFound,
    ObjectTooLarge,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    UsageError,
    WrongPassword,
)
from amber.events import EventSink, NullEvents
from amber.repository.blobstore import BlobStore
from amber.repository.crypto import KdfParams, MasterKey
from amber.repository.index import Location
from amber.repository.keys import KeyInfo, describe_key, load_key_file, unwrap_key, wrap_master_key
from amber.repository.limits import OBJECT_LIMITS, chunker_problem, data_blob_limit
from amber.repository.lock import Lock, LockInfo
from amber.repository.model import Snapshot, Tree, decode_snapshot, decode_tree, encode_snapshot, encode_tree
from amber.repository.pack import BlobType
from amber.repository.sealing import FORMAT_VERSION, SUPPORTED_VERSIONS, Kind, Sealer, associated_data
from amber.storage.appendonly import AppendOnlyBackend
from amber.storage.base import Backend, FileType, Handle
from amber.storage.layout import format_size, too_large

CHUNK_AVG = 1 << 20  # pyfastcdc: mean chunk ~ avg + min = 1.25 MiB
CHUNK_MIN = 256 * 1024
CHUNK_MAX = 8 << 20
_TREE_READ_GAP = 64 * 1024  # load_trees: read across gaps up to this many bytes
_TREE_READ_SPAN = 4 << 20  # load_trees: at most this many bytes per read


_REPO_ID = re.compile(r"[0-9a-f]{1,64}")  # uuid4().hex when created
MAX_COMPRESSION_LEVEL = 22  # zstd's highest; 0 stores uncompressed


class RepoConfig(msgspec.Struct):
    version: int
    id: str
    chunk_avg: int = CHUNK_AVG
    chunk_min: int = CHUNK_MIN
    chunk_max: int = CHUNK_MAX
    compression_level: int = 3
    created_by: str = ""
    append_only: bool = False  # set at init, never cleared: every client is append-only
    migrating: bool = False  # version 2 only: `amber migrate` has not finished (objects of both formats)


class Repository:
    """An opened repository. Use :func:`init_repository` or :func:`open_repository`."""

    def __init__(self, backend: Backend, key: MasterKey, config: RepoConfig, key_name: str) -> None:
        self.backend = backend
        self.key = key
        self.config = config
        self.key_name = key_name
        self.sealer = Sealer(key, config.version, config.migrating)
        self.blobs = BlobStore(
            backend, key, config.compression_level, self.sealer, data_blob_limit(config.chunk_max)
        )
        self._tree_cache: OrderedDict[bytes, Tree] = OrderedDict()
        self._tree_lock = threading.Lock()
        self.index_errors: list[str] = []
        self.index_loaded = False
        self.held_locks: list[Lock] = []  # locks this object holds now (innermost last)
        self.cancel = CancelToken()  # the operation using this repository; a lost lease sets it
        self.events: EventSink = NullEvents()  # that operation's sink: services report progress to it

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def append_only(self) -> bool:
        """True when the repository or the key that opened it is append-only."""
        return isinstance(self.backend, AppendOnlyBackend)

    def load_index(self) -> None:
        self.index_errors = self.blobs.load_index()
        self.index_loaded = True

    def ensure_index(self) -> None:
        """Load the index now if the repository was opened without it (searches answered
        from the local catalog never need it)."""
        if not self.index_loaded:
            self.load_index()

    def drop_missing_packs(self) -> list[str]:
        """Forget (in memory) index entries whose pack is not stored, and return those packs.

        A writer calls this once after locking, before it deduplicates (§12): an index
        file put back after prune, or one that outlived its packs, must not make a
        new snapshot reference deleted data. One listing of ``data/``.
        """
        stored = {fi.name for fi in self.backend.list(FileType.PACK)}
        missing = sorted(self.blobs.index.packs() - stored)
        self.blobs.drop_packs(missing)
        return missing

    # -- locks ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, exclusive: bool = False, maintenance: bool = False) -> Iterator[Lock]:
        """Hold a lock. Shared by default; ``maintenance`` (prune, repair) excludes only its kind.

        If the index was loaded before the lock and a prune has since replaced
        index files, the index is reloaded: a process never works from an index
        older than its lock (design §13, two-phase deletion).
        """
        lk = Lock(self.backend, *self.lock_codec(), exclusive, maintenance,
                  on_lost=lambda lost: self.cancel.cancel(lost))  # fmt: skip
        lk.acquire()
        self.held_locks.append(lk)
        try:
            if self.blobs.index_superseded():
                self.load_index()
            yield lk
        finally:
            self.held_locks.remove(lk)
            lk.release()

    def lock_infos(self, unreadable: dict[str, str] | None = None) -> dict[str, LockInfo]:
        """Every readable lock file (stale ones included), by file name; the others, with
        why they could not be read (damaged, planted, oversized), go to ``unreadable``."""
        lk = Lock(self.backend, *self.lock_codec(), False)
        infos = lk.read_all()
        if unreadable is not None:
            unreadable.update(lk.unreadable)
        return infos

    def lock_codec(self) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
        """How lock files are sealed and opened (for :class:`Lock`)."""
        return self.sealer.sealer_for(Kind.LOCK), self.sealer.opener_for(Kind.LOCK)

    def lock_names(self) -> list[str]:
        """Every lock file name, readable or not."""
        return sorted(fi.name for fi in self.backend.list(FileType.LOCK))

    def remove_lock(self, name: str) -> None:
        self.backend.remove(Handle(FileType.LOCK, name))

    # -- trees --------------------------------------------------------------
    def save_tree(self, tree: Tree) -> tuple[bytes, bool]:
        data = encode_tree(tree)
        tree_id = self.key.blob_id(data)
        return tree_id, self.blobs.save(BlobType.TREE, data, tree_id)

    def load_tree(self, tree_id: bytes) -> Tree:
        with self._tree_lock:
            tree = self._tree_cache.get(tree_id)
            if tree is not None:
                self._tree_cache.move_to_end(tree_id)
                return tree
        tree = decode_tree(self.blobs.load(tree_id), tree_id)
        with self._tree_lock:
            self._tree_cache[tree_id] = tree
            if len(self._tree_cache) > 256:
                self._tree_cache.popitem(last=False)
        return tree

    def load_trees(self, tree_ids: Sequence[bytes]) -> list[Tree | None]:
        """Several trees with few reads: one ranged read per run of nearby blobs in a pack.

        For walks that load many trees once each (the archiver's parent trees):
        the tree cache is neither consulted nor filled. None marks a tree that
        is not indexed or cannot be read, decrypted or decoded.
        """
        out: list[Tree | None] = [None] * len(tree_ids)
        where: dict[bytes, list[int]] = {}
        for i, tid in enumerate(tree_ids):
            where.setdefault(tid, []).append(i)
        by_pack: dict[str, list[tuple[bytes, Location]]] = {}
        for tid in where:
            loc = self.blobs.index.lookup(tid)
            if loc is not None:
                by_pack.setdefault(loc.pack, []).append((tid, loc))
        for pack, items in by_pack.items():
            items.sort(key=lambda item: item[1].offset)
            runs: list[list[tuple[bytes, Location]]] = []
            start = end = -_TREE_READ_SPAN
            for tid, loc in items:  # a new read after a gap, or when the span grows too long
                if loc.offset - end > _TREE_READ_GAP or loc.offset + loc.length - start > _TREE_READ_SPAN:
                    runs.append([])
                    start = loc.offset
                runs[-1].append((tid, loc))
                end = max(end, loc.offset + loc.length)
            for run in runs:
                with contextlib.suppress(AmberError):  # the pack is missing or unreadable
                    for tid, plain in self.blobs.load_from_pack(pack, run):
                        with contextlib.suppress(IntegrityError):
                            if isinstance(plain, IntegrityError):
                                raise plain
                            tree = decode_tree(plain, tid)
                            for i in where[tid]:
                                out[i] = tree
        return out

    # -- snapshots -----------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Write a snapshot; refused (LeaseLost) when a lock held for it has lapsed (design §13):
        a prune may have deleted data it references while the lease looked stale."""
        for held in self.held_locks:
            held.ensure_held()
        data = self.sealer.seal(Kind.SNAPSHOT, encode_snapshot(snapshot))
        limit = OBJECT_LIMITS[FileType.SNAPSHOT]
        if len(data) > limit:  # readers refuse it: never write one
            raise ObjectTooLarge(
                f"the snapshot would be {format_size(len(data))}, over the {format_size(limit)} limit "
                f"({len(snapshot.paths)} paths, {len(snapshot.skipped)} skipped files)"
            )
        name = hashlib.sha256(data).hexdigest()
        self.backend.save(Handle(FileType.SNAPSHOT, name), data)
        return name

    def load_snapshot(self, name: str, size: int | None = None) -> Snapshot:
        """``size``: the listed size, if known, to refuse an oversized file without a request."""
        handle = Handle(FileType.SNAPSHOT, name)
        limit = OBJECT_LIMITS[FileType.SNAPSHOT]
        if size is not None and size > limit:
            raise too_large(handle, limit, size)
        raw = self.backend.load(handle, limit=limit)
        if hashlib.sha256(raw).hexdigest() != name:
            raise IntegrityError(f"snapshot {name[:8]}: content does not match its name")
        return decode_snapshot(self.sealer.open(Kind.SNAPSHOT, raw))

    def snapshot_names(self) -> list[str]:
        return sorted(fi.name for fi in self.backend.list(FileType.SNAPSHOT))

    def snapshots(self, errors: list[tuple[str, AmberError]] | None = None) -> dict[str, Snapshot]:
        """All readable snapshots; unreadable ones go to ``errors`` if given."""
        found: dict[str, Snapshot] = {}
        for fi in sorted(self.backend.list(FileType.SNAPSHOT), key=lambda fi: fi.name):
            name = fi.name
            try:
                found[name] = self.load_snapshot(name, fi.size)
            except (IntegrityError, ObjectNotFound) as exc:
                if errors is None:
                    raise
                errors.append((name, exc))
        return found

    def resolve_snapshot_id(self, prefix: str) -> str:
        matches = [n for n in self.snapshot_names() if n.startswith(prefix)]
        if not matches:
            raise SnapshotNotFound(f"no snapshot with ID {prefix!r}")
        if len(matches) > 1:
            raise UsageError(f"snapshot ID prefix {prefix!r} is ambiguous")
        return matches[0]

    def remove_snapshot(self, name: str) -> None:
        self.backend.remove(Handle(FileType.SNAPSHOT, name))

    # -- keys ---------------------------------------------------------------
    def add_key(self, password: bytes, params: KdfParams | None = None, append_only: bool = False) -> str:
        # An append-only session can only hand out append-only keys.
        name, raw = wrap_master_key(self.key, password, params, append_only or self.append_only)
        self.backend.save(Handle(FileType.KEY, name), raw)
        return name

    def list_keys(self) -> list[KeyInfo]:
        keys = self.backend.list(FileType.KEY)
        return [describe_key(fi.name, load_key_file(self.backend, fi)) for fi in keys]

    def remove_key(self, name: str) -> None:
        names = [fi.name for fi in self.backend.list(FileType.KEY)]
        matches = [n for n in names if n.startswith(name)]
        if len(matches) != 1:
            raise UsageError(f"key {name!r} {'is ambiguous' if matches else 'not found'}")
        if matches[0] == self.key_name:
            raise UsageError("refusing to remove the key in use; open with another key first")
        self.backend.remove(Handle(FileType.KEY, matches[0]))

    def change_password(self, password: bytes) -> str:
        """Add a key for the new password, then drop the one in use."""
        if self.append_only:  # the removal would be refused after the add: refuse before it
            raise AppendOnlyViolation("append-only repository: a key cannot be replaced; use key add")
        new_name = self.add_key(password)
        self.backend.remove(Handle(FileType.KEY, self.key_name))
        self.key_name = new_name
        return new_name

    def shares_blob_ids(self, other: Repository) -> bool:
        """True if ``other`` has the same ID key: equal data has equal blob IDs in both."""
        return hmac.compare_digest(self.key.id_key, other.key.id_key)

    # -- format -------------------------------------------------------------
    def save_config(self, config: RepoConfig) -> None:
        """Replace ``config`` (only `amber migrate` does) and follow its format from now on."""
        sealed = Sealer(self.key, config.version).seal(Kind.CONFIG, msgspec.msgpack.encode(config))
        self.backend.save(Handle(FileType.CONFIG), sealed)
        self.config = config
        self.sealer.set_format(config.version, config.migrating)

    def close(self) -> None:
        self.backend.close()


def open_config(key: MasterKey, raw: bytes) -> RepoConfig:
    """Decrypt and decode ``config``. From version 2 on it is bound to its kind (§4)."""
    try:
        plain, bound = key.decrypt(raw, associated_data(Kind.CONFIG)), True
    except IntegrityError:
        try:
            plain, bound = key.decrypt(raw), False
        except IntegrityError as exc:
            raise IntegrityError("repository config does not authenticate: damaged, or not a config") from exc
    try:
        config = msgspec.msgpack.decode(plain, type=RepoConfig)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise IntegrityError("repository config is malformed") from exc
    if not _REPO_ID.fullmatch(config.id):  # it names local files: the catalog, caches, journals
        raise IntegrityError("repository config is malformed: its ID is not 1-64 hex digits")
    if config.version not in SUPPORTED_VERSIONS:
        raise UsageError(f"unsupported repository format version {config.version}")
    if bound != (config.version >= 2) or (config.migrating and config.version < 2):
        raise IntegrityError(f"repository config does not match its format version {config.version}")
    return config


def init_repository(
    backend: Backend,
    password: bytes,
    params: KdfParams | None = None,
    append_only: bool = False,
    ids_from: Repository | None = None,
    version: int = FORMAT_VERSION,
) -> Repository:
    """Create a repository. With ``ids_from``, it shares that repository's ID key (and so
    its chunker): the same data gets the same blob IDs and chunk boundaries in both
    (restic's ``--copy-chunker-params``); its encryption key is its own."""
    if backend.exists():
        raise RepositoryExists(f"a repository already exists at {backend.location}")
    if not password:
        raise UsageError("empty password refused")
    with contextlib.suppress(ObjectNotFound):
        if any(True for _ in backend.list(FileType.KEY)):
            raise RepositoryExists(f"{backend.location} already holds repository keys")
    backend.create()
    key = MasterKey.generate()
    if ids_from is not None:
        key = MasterKey(key.encrypt_key, ids_from.key.id_key)
    config = RepoConfig(
        version=version, id=uuid.uuid4().hex, created_by=f"amber {__version__}",
        append_only=append_only,
    )  # fmt: skip
    if ids_from is not None:
        theirs = ids_from.config
        config = msgspec.structs.replace(
            config, chunk_avg=theirs.chunk_avg, chunk_min=theirs.chunk_min, chunk_max=theirs.chunk_max
        )
    repo = Repository(backend, key, config, "")
    repo.key_name = repo.add_key(password, params)
    # The config is written last: its presence is what makes a repository exist.
    backend.save(Handle(FileType.CONFIG), repo.sealer.seal(Kind.CONFIG, msgspec.msgpack.encode(config)))
    if append_only:
        repo = Repository(AppendOnlyBackend(backend), key, config, repo.key_name)
    return repo


def open_repository(backend: Backend, password: bytes, load_index: bool = True) -> Repository:
    if not backend.exists():
        raise RepositoryNotFound(f"no repository at {backend.location}")
    key: MasterKey | None = None
    key_name = ""
    key_append_only = False
    unusable: list[str] = []  # key files refused for a reason other than the password
    for fi in backend.list(FileType.KEY):
        try:
            key, key_append_only = unwrap_key(load_key_file(backend, fi), password)
        except WrongPassword:
            continue
        except IntegrityError as exc:
            unusable.append(f"{fi.name[:8]}: {exc}")
            continue
        key_name = fi.name
        break
    if key is None:
        skipped = f" ({len(unusable)} key file(s) unusable; {unusable[0]})" if unusable else ""
        raise WrongPassword(f"wrong password or no key found for it: {backend.location}{skipped}")
    config = open_config(key, backend.load(Handle(FileType.CONFIG), limit=OBJECT_LIMITS[FileType.CONFIG]))
    problem = chunker_problem(config.chunk_min, config.chunk_avg, config.chunk_max)
    if problem:
        raise IntegrityError(f"repository config has unusable chunk sizes: {problem}")
    if not 0 <= config.compression_level <= MAX_COMPRESSION_LEVEL:
        level = config.compression_level
        raise IntegrityError(f"repository config has an unusable compression level {level}")
    if config.append_only or key_append_only:
        backend = AppendOnlyBackend(backend)
    repo = Repository(backend, key, config, key_name)
    if load_index:
        repo.load_index()
    return repo
