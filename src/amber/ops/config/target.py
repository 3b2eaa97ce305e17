"""Which repository a command means: ``-r`` as a location or a configured NAME, else the config's.

``-r``/``AMBER_REPOSITORY`` may name a ``[repositories.NAME]`` of the config:
the command then opens that repository's ``url`` with its backend options and
password source (a password given on the command line wins), exactly as
``amber run`` does. Without ``-r``, a config decides: ``--job``'s repository,
else the only job's, else the only configured repository. A location equal to a
configured ``url`` gets that repository's options and password source as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from amber.errors import AmberError, ConfigError, UsageError
from amber.ops.config.model import (
    Config,
    RepositoryConfig,
    default_config_path,
    default_state_dir,
    load_config,
)
from amber.ops.config.repos import backend_options, config_passwords
from amber.services import session
from amber.storage.url import BackendOptions, parse_location


@dataclass(frozen=True)
class Target:
    name: str  # the configured name, or the location itself
    location: str
    passwords: session.PasswordSource
    options: BackendOptions | None = None  # None: the operation's own (-o, --limit-*)
    configured: bool = False


def load_optional(config_path: str | None) -> tuple[Config | None, str]:
    """The config: ``config_path`` (errors raised), else the default file when there is one.

    A broken default file is not used (the reason is returned): a command given an
    explicit location must not fail on it.
    """
    if config_path:
        return load_config(config_path), ""
    path = default_config_path()
    if not os.path.exists(path):
        return None, ""
    try:
        return load_config(path), ""
    except ConfigError as exc:
        return None, f"config not used: {exc.message}"


def state_path(config: Config | None) -> str:
    """The state database: the config's, else the default one (where `amber copy` records without one)."""
    return config.state.path if config is not None else os.path.join(default_state_dir(), "state.db")


def same_place(location: str) -> str:
    loc = parse_location(location)
    if loc.scheme == "local":
        return os.path.abspath(os.path.expanduser(loc.path))
    return location.rstrip("/")


def _by_url(config: Config, location: str) -> RepositoryConfig | None:
    try:
        place = same_place(location)
    except AmberError:
        return None
    for repo in config.repositories.values():
        try:
            if same_place(repo.url) == place:
                return repo
        except AmberError:
            continue
    return None


def _configured(
    repo: RepositoryConfig, passwords: session.PasswordSource, given: bool, base: BackendOptions | None
) -> Target:  # fmt: skip
    own = passwords if given else config_passwords(repo, passwords)
    return Target(repo.name, repo.url, own, backend_options(repo, base or BackendOptions()), configured=True)


def _default_name(config: Config, job: str | None) -> str | None:
    if job:
        return config.job(job).repository
    if len(config.jobs) == 1:
        return next(iter(config.jobs.values())).repository
    if len(config.repositories) == 1:
        return next(iter(config.repositories))
    return None


def resolve(
    spec: str | None, config: Config | None, passwords: session.PasswordSource, passwords_given: bool,
    job: str | None = None, problem: str = "", base: BackendOptions | None = None,
) -> Target:  # fmt: skip
    """The repository ``spec`` (``-r``) means; ``passwords_given``: the command line's password wins.

    ``base``: the operation's backend options, under a configured repository's own.
    """
    if spec:
        if config is not None and spec in config.repositories:
            return _configured(config.repositories[spec], passwords, passwords_given, base)
        found = _by_url(config, spec) if config is not None else None
        if found is not None:
            return _configured(found, passwords, passwords_given, base)
        return Target(spec, spec, passwords)
    name = _default_name(config, job) if config is not None else None
    if config is not None and name is not None:
        return _configured(config.repositories[name], passwords, passwords_given, base)
    hint = "use -r/--repo or set AMBER_REPOSITORY"
    if config is not None:
        names = ", ".join(sorted(config.repositories)) or "none"
        hint = f"use -r/--repo (a location, or a name in {config.source}: {names}) or set AMBER_REPOSITORY"
    raise UsageError(f"no repository given: {hint}" + (f" ({problem})" if problem else ""))
