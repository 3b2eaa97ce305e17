"""``amber status --copies``: every snapshot's copies across repositories, judged by 3-2-1-1-0.

Snapshots are matched across repositories by identity (``original`` or ID; see
engine/copyplan.py). Where each repository is and what kind of place it is
comes from the config's ``[repositories.NAME]`` tables (``kind``, ``offsite``,
``immutable``, ``offline``) or from ``--replica URL,kind=usb,offsite`` options.

Verification errors per copy come from a structural check run now (``check``),
else from the last check recorded in the state database, else they are
unknown. A repository that cannot be reached (an offline disk) still counts
the copies the state database recorded for it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from amber.engine.checker import Checker
from amber.engine.copyplan import identity
from amber.engine.rule321 import CopyFacts, Replica, Rule, Verdict, evaluate
from amber.errors import AmberError, UsageError
from amber.ops.config.model import MEDIA_KINDS, Config
from amber.ops.config.repos import backend_options, config_passwords
from amber.ops.config.target import same_place
from amber.repository import Snapshot
from amber.services import session
from amber.services.snapshots import SnapshotFilter
from amber.storage.url import BackendOptions

REACHABLE, UNREACHABLE = "ok", "unreachable"


@dataclass
class ReplicaSource:
    replica: Replica
    location: str
    passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    options: BackendOptions | None = None  # a configured repository's backend options


class History(Protocol):
    """What earlier runs recorded about a repository (the state database)."""

    def copied(self, name: str) -> set[str]:
        """Snapshot IDs (source side) successfully copied to ``name``."""

    def check_errors(self, name: str) -> int | None:
        """Errors found by the last check of ``name``; None if never checked."""


@dataclass
class ReplicaState:
    name: str
    location: str
    status: str  # ok | unreachable
    error: str = ""
    snapshots: int = 0
    check_errors: int | None = None  # repository-wide, when known


@dataclass
class SnapshotCopies:
    identity: str
    time: str
    hostname: str
    paths: list[str]
    holders: list[tuple[str, str, int | None]]  # (replica, snapshot ID there or "(recorded)", errors)
    verdict: Verdict


@dataclass
class CopiesReport:
    snapshots: list[SnapshotCopies] = field(default_factory=list)
    replicas: list[ReplicaState] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.snapshots) and all(s.verdict.passed for s in self.snapshots)


_PASSWORD_KEYS = ("password_file", "password_env", "password_command")


def parse_replica(spec: str, fallback: session.PasswordSource | None = None) -> ReplicaSource:
    """``URL[,kind=usb][,offsite][,immutable][,offline][,name=N][,password_file=F|password_env=V|
    password_command=C]``; neither the URL nor the command may contain commas.

    Without a password key the replica opens with ``fallback`` (the global password).
    """
    location, *flags = [part.strip() for part in spec.split(",")]
    if not location:
        raise UsageError(f"--replica {spec!r}: no repository location")
    fields: dict[str, Any] = {"name": location}
    secret: dict[str, str] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if key in ("offsite", "immutable", "offline") and not sep:
            fields[key] = True
        elif key == "kind" and value in MEDIA_KINDS:
            fields["kind"] = value
        elif key == "name" and value:
            fields["name"] = value
        elif key in _PASSWORD_KEYS and value and not secret:
            secret[key] = os.path.expanduser(value) if key == "password_file" else value
        else:
            kinds = "|".join(MEDIA_KINDS)
            raise UsageError(f"--replica {spec!r}: unknown {flag!r} (use kind={kinds}, offsite, immutable, "
                             "offline, name=NAME, and one of password_file=, password_env=, "
                             "password_command=)")  # fmt: skip
    passwords = fallback or session.PasswordSource()
    if secret:
        passwords = session.PasswordSource(password_file=secret.get("password_file"),
                                           password_command=secret.get("password_command"),
                                           password_env=secret.get("password_env"))  # fmt: skip
    return ReplicaSource(Replica(**fields), location, passwords)


def replicas_from_config(
    config: Config, fallback: session.PasswordSource, base: BackendOptions | None = None
) -> list[ReplicaSource]:
    """``base``: the operation's backend options (-o, --limit-*), under each repository's own."""
    found = []
    for name, r in config.repositories.items():
        replica = Replica(name, r.kind, r.offsite, r.immutable, r.offline)
        options = backend_options(r, base or BackendOptions())
        found.append(ReplicaSource(replica, r.url, config_passwords(r, fallback), options))
    return found


class StateHistory:
    """:class:`History` read from the state database of ``amber run``."""

    def __init__(self, path: str, limit: int = 2000) -> None:
        self._copied: dict[str, set[str]] = {}
        self._errors: dict[str, int] = {}
        self.locations: dict[str, str] = {}  # name -> location of copies made to places not configured
        if not os.path.exists(path):
            return
        state = importlib.import_module("amber.ops.state")
        for run in state.StateDB(path).runs(limit=limit):  # newest first
            for d in run.destinations:
                if d.step == "copy" and d.status == "success" and d.snapshot_id:
                    copied = self._copied.setdefault(d.name, set())
                    copied.add(d.snapshot_id)  # the copy's ID, known once the repository was seen
                    source = d.details.get("source") if isinstance(d.details, dict) else None
                    if source:  # the source's ID: matches even while the repository is offline
                        copied.add(str(source))
                    location = d.details.get("location") if isinstance(d.details, dict) else None
                    if location:
                        self.locations.setdefault(d.name, str(location))
                elif d.step == "check" and d.name not in self._errors and d.status != "skipped":
                    found = len(d.details.get("errors", [])) if isinstance(d.details, dict) else 0
                    self._errors[d.name] = 0 if d.status == "success" else max(1, found)

    def copied(self, name: str) -> set[str]:
        return self._copied.get(name, set())

    def check_errors(self, name: str) -> int | None:
        return self._errors.get(name)


def recorded_replicas(
    history: StateHistory, known: Sequence[ReplicaSource], passwords: session.PasswordSource
) -> list[ReplicaSource]:
    """Places `amber copy` copied to that ``known`` does not list (by name or location)."""
    names = {src.replica.name for src in known}
    places = {_place(src.location) for src in known}
    return [
        ReplicaSource(Replica(name), location, passwords)
        for name, location in sorted(history.locations.items())
        if name not in names and _place(location) not in places
    ]


def _place(location: str) -> str:
    try:
        return same_place(location)
    except AmberError:
        return location


def _scan(
    src: ReplicaSource, run_check: bool, history: History | None
) -> tuple[ReplicaState, dict[str, tuple[str, Snapshot]], dict[str, int | None]]:
    """(state, identity -> (snapshot ID, snapshot), snapshot ID -> errors) of one repository."""
    name = src.replica.name
    state = ReplicaState(name, src.location, REACHABLE)
    try:
        with session.opened(src.location, src.passwords, lock=run_check, options=src.options) as repo:
            snaps = repo.snapshots([])
            errors: dict[str, int | None] = {}
            if run_check:
                report = Checker(repo).run()
                counts: dict[str, int] = {}
                for sid, _path in report.damaged:
                    counts[sid] = counts.get(sid, 0) + 1
                errors = {sid: counts.get(sid, 0) for sid in snaps}
                state.check_errors = len(report.errors)
            elif history is not None and (known := history.check_errors(name)) is not None:
                errors = dict.fromkeys(snaps, known)
                state.check_errors = known
    except AmberError as exc:
        state.status, state.error = UNREACHABLE, exc.message
        return state, {}, {}
    except OSError as exc:
        state.status, state.error = UNREACHABLE, str(exc)
        return state, {}, {}
    state.snapshots = len(snaps)
    by_identity = {identity(sid, s): (sid, s) for sid, s in snaps.items()}
    return state, by_identity, errors


def copies_status(
    replicas: Sequence[ReplicaSource], run_check: bool = False, history: History | None = None,
    snapshot_filter: SnapshotFilter | None = None, rule: Rule | None = None,
) -> CopiesReport:  # fmt: skip
    """Scan every repository and judge each snapshot's copies."""
    if not replicas:
        raise UsageError("no repositories to compare: give --replica or configure [repositories]")
    flt = snapshot_filter or SnapshotFilter()
    report = CopiesReport()
    seen: dict[str, dict[str, tuple[str, Snapshot]]] = {}
    errors: dict[str, dict[str, int | None]] = {}
    for src in replicas:
        state, by_identity, errs = _scan(src, run_check, history)
        report.replicas.append(state)
        seen[src.replica.name], errors[src.replica.name] = by_identity, errs
    meta: dict[str, Snapshot] = {}
    alias: dict[str, str] = {}  # any snapshot ID -> identity
    for by_identity in seen.values():
        for ident, (sid, snap) in by_identity.items():
            meta.setdefault(ident, snap)
            alias[sid] = alias[ident] = ident
    for ident in sorted(meta, key=lambda i: (meta[i].datetime, i)):
        snap = meta[ident]
        if not flt.matches(snap):
            continue
        facts, holders = [], []
        for src in replicas:
            name = src.replica.name
            if ident in seen[name]:
                sid = seen[name][ident][0]
                found = errors[name].get(sid)
                holders.append((name, sid, found))
                facts.append(CopyFacts(src.replica, found))
            elif history is not None and _recorded(history.copied(name), ident, alias):
                found = history.check_errors(name)
                holders.append((name, "(recorded)", found))
                facts.append(CopyFacts(src.replica, found))
        verdict = evaluate(facts, rule)
        report.snapshots.append(SnapshotCopies(ident, snap.time, snap.hostname, list(snap.paths),
                                               holders, verdict))  # fmt: skip
    return report


def _recorded(copied: set[str], ident: str, alias: Mapping[str, str]) -> bool:
    return any(alias.get(sid, sid) == ident for sid in copied)
