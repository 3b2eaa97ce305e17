"""``amber copy`` run by hand: copy to each destination, then record it in the state database.

The record is a run of the pseudo-job ``copy:manual`` with one ``copy`` step per
destination and copied snapshot (the same shape ``amber run`` writes for its
mirrors), so ``amber status --copies``, metrics and alerts know that a
destination got a snapshot even when nobody scheduled it.

``--from``/``--to`` take a location or the NAME of a configured
``[repositories.NAME]``. A NAME opens that repository exactly as ``amber run``
does (:class:`~amber.ops.run.steps.Repositories`): its ``url``, backend
options, limits and password source (``--from-password-*``/``--to-password-*``
given on the command line win; without either, the global password). A NAME wins
over a local directory of the same name (write ``./NAME`` for the directory). A
bare word that is neither a NAME nor an existing path is ``RepositoryNotFound``
(exit 10), raised before anything is copied.

A location that is the ``url`` of a configured repository is recorded under
NAME and opened with that repository's backend options (its Object Lock
settings, for instance), with the password the command line gives. Recording is
best effort: a state database that cannot be written gives a warning, never a
failed copy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from amber.engine.progress import Progress
from amber.errors import AmberError, RepositoryNotFound, StateError
from amber.ops.config.model import (
    Config,
    RepositoryConfig,
    default_config_path,
    default_state_dir,
)
from amber.ops.config.repos import backend_options
from amber.ops.config.target import load_optional, same_place
from amber.ops.state import Destination, RunRecord, StateDB
from amber.services import copy as copy_service
from amber.services import replicate as replicate_service
from amber.services import session
from amber.services.context import OperationContext
from amber.services.replicate import FAILED, OFFLINE, OK, DestinationStatus
from amber.storage.url import BackendOptions

JOB = "copy:manual"


@dataclass
class ManualCopy:
    source: str
    targets: list[str]
    source_passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    target_passwords: session.PasswordSource = field(default_factory=session.PasswordSource)
    request: copy_service.CopyRequest = field(default_factory=copy_service.CopyRequest)
    config_path: str | None = None  # --config; None: the default config file, when there is one
    source_passwords_given: bool = False  # --from-password-*: wins over a configured repository's own
    target_passwords_given: bool = False  # --to-password-*: likewise for every destination
    context: OperationContext | None = None  # the caller's operation: options, cancel signal, audit


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy, resolved: a location, or a configured repository chosen by name."""

    name: str  # the config's name, or the location itself
    location: str
    passwords: session.PasswordSource
    options: BackendOptions | None = None  # None: the operation's (-o, --limit-*)


@dataclass
class ManualCopyOutcome:
    statuses: list[DestinationStatus]
    run_id: int = 0  # the state database's record; 0 when it could not be written
    warning: str = ""


class _Known:
    """The configured repositories, found by name or by location."""

    def __init__(self, config: Config | None, problem: str = "", base: BackendOptions | None = None) -> None:
        self.config = config
        self.base = base or BackendOptions()  # the operation's options (-o, --limit-*)
        self.problem = problem  # why the default config file was not used
        self._by_place: dict[str, RepositoryConfig] = {}
        for repo in config.repositories.values() if config else ():
            try:
                self._by_place.setdefault(same_place(repo.url), repo)
            except AmberError:
                continue

    def find(self, location: str) -> RepositoryConfig | None:
        return self._by_place.get(same_place(location))

    def name(self, location: str) -> str:
        found = self.find(location)
        return found.name if found else location

    def options(self, location: str) -> BackendOptions | None:
        found = self.find(location)
        return backend_options(found, self.base) if found else None

    def resolve(self, spec: str, passwords: session.PasswordSource, given: bool) -> Endpoint:
        """``spec`` as a configured name first, else as a location."""
        if self.config is not None and spec in self.config.repositories:
            from amber.ops.run.steps import Repositories  # as `amber run` opens it; loaded on use

            repos = Repositories(self.config, passwords, OperationContext(self.base))
            own = passwords if given else repos.passwords(spec)
            return Endpoint(spec, repos.settings(spec).url, own, repos.options(spec))
        if _bare_word(spec) and not os.path.lexists(spec):
            raise RepositoryNotFound(self._unknown(spec))
        return Endpoint(self.name(spec), spec, passwords, self.options(spec))

    def _unknown(self, spec: str) -> str:
        if self.config is None:
            why = self.problem or f"no config file at {default_config_path()}"
            return f"no repository {spec!r}: not a path here, and no configured names ({why})"
        names = ", ".join(sorted(self.config.repositories)) or "none"
        return f"no repository {spec!r}: not a path here, nor a name in {self.config.source} ({names})"

    @property
    def state_path(self) -> str:
        return self.config.state.path if self.config else os.path.join(default_state_dir(), "state.db")


def _bare_word(spec: str) -> bool:
    """A name-like argument: no path separator, no scheme, no ``~``."""
    return bool(spec) and "/" not in spec and ":" not in spec and not spec.startswith(("~", "."))


def _from_result(name: str, target: str, result: copy_service.CopyResult) -> DestinationStatus:
    st = DestinationStatus(name, target, OK)
    st.copied, st.already, st.bytes_added = result.copied, result.already, result.stats.bytes_added
    if result.failed:
        st.status = FAILED
        st.error = "; ".join(f"{sid[:8]}: {why}" for sid, why in result.failed)
    return st


def _endpoints(known: _Known, job: ManualCopy) -> tuple[Endpoint, list[Endpoint]]:
    source = known.resolve(job.source, job.source_passwords, job.source_passwords_given)
    return source, [known.resolve(t, job.target_passwords, job.target_passwords_given) for t in job.targets]


def endpoints(job: ManualCopy) -> tuple[Endpoint, list[Endpoint]]:
    """``job``'s source and destinations with configured names resolved; nothing is opened.

    An unknown name that is no path either raises ``RepositoryNotFound``.
    """
    config, warning = load_optional(job.config_path)
    return _endpoints(_Known(config, warning, job.context.options if job.context else None), job)


def manual_copy(job: ManualCopy, progress: Progress | None = None) -> ManualCopyOutcome:
    """Resolve names, copy, then record. A single destination's error is raised (after it is recorded)."""
    config, warning = load_optional(job.config_path)
    known = _Known(config, warning, job.context.options if job.context else None)
    source, targets = _endpoints(known, job)
    started = time.time()
    try:
        if len(targets) == 1:  # errors keep their own exit codes
            t = targets[0]
            result = copy_service.copy(
                source.location, source.passwords, t.location, t.passwords, job.request,
                progress=progress, src_options=source.options, dst_options=t.options, ctx=job.context,
            )  # fmt: skip
            statuses = [_from_result(t.name, t.location, result)]
        else:
            dests = [replicate_service.Destination(t.location, t.passwords, t.name, t.options)
                     for t in targets]  # fmt: skip
            statuses = replicate_service.replicate_from(
                source.location, source.passwords, job.request.snapshot_ids, dests, job.request.filter,
                progress=progress, source_options=source.options, ctx=job.context,
            )  # fmt: skip
    except AmberError as exc:
        failed = [DestinationStatus(t.name, t.location, FAILED, error=exc.message) for t in targets]
        record(known.state_path, started, failed)
        raise
    run_id, problem = record(known.state_path, started, statuses)
    return ManualCopyOutcome(statuses, run_id, "; ".join(w for w in (warning, problem) if w))


def _steps(st: DestinationStatus) -> list[Destination]:
    base = {"location": st.location, "manual": True, "seconds": round(st.seconds, 3)}
    if st.status == OFFLINE:
        return [Destination(st.name, "copy", "skipped", st.error, "", base)]
    if st.status != OK:
        return [Destination(st.name, "copy", "failed", st.error, "", base)]
    if not st.copied:
        already = {**base, "already": st.already}
        return [Destination(st.name, "copy", "success", "already present", "", already)]
    return [
        Destination(st.name, "copy", "success", "", dst_id,
                    {**base, "source": src_id, "bytes_added": st.bytes_added if i == 0 else 0})
        for i, (src_id, dst_id) in enumerate(st.copied)
    ]  # fmt: skip


def record(state_path: str, started: float, statuses: list[DestinationStatus]) -> tuple[int, str]:
    """Write the run; (its id, "") or (0, why it could not be written)."""
    run = RunRecord(JOB, started, status="success" if all(st.ok for st in statuses) else "failed")
    for st in statuses:
        run.destinations.extend(_steps(st))
        run.snapshot_ids.extend(src for src, _ in st.copied if src not in run.snapshot_ids)
        run.bytes_added += st.bytes_added
        if not st.ok:
            run.errors.append(f"{st.name}: {st.status}: {st.error}")
    try:
        return StateDB(state_path).add(run).id, ""
    except StateError as exc:
        return 0, f"copy not recorded: {exc.message}"
