"""What ``config check`` verifies beyond the file itself: the environment the jobs will meet.

Loading a config only validates its text (every command loads it, so that stays
cheap). ``config check`` also makes sure that each ``password_file`` can be read
and that each ``[[notify]]`` URL is one apprise accepts, so a typo is found at
setup time instead of at the first failed run. Problems use the same
``file:line: key: problem`` form as the loader.
"""

from __future__ import annotations

from amber.ops.config import tomlpos
from amber.ops.config.model import Config


def notify_url_accepted(url: str) -> bool:
    """True when apprise knows the scheme and the URL parses; nothing is sent."""
    import apprise  # slow to import: only when checking

    return bool(apprise.Apprise().add(url))


def _unreadable(path: str) -> str:
    try:
        with open(path, "rb"):
            return ""
    except OSError as exc:
        return exc.strerror or str(exc)


def problems(config: Config) -> list[str]:
    """Every problem found, one line each; empty when the environment is ready."""
    try:
        with open(config.source, encoding="utf-8") as f:
            lines = tomlpos.key_lines(f.read())
    except (OSError, UnicodeDecodeError):
        lines = {}

    def at(path: tomlpos.Path, problem: str) -> str:
        line = tomlpos.line_of(lines, path)
        where = f"{config.source}:{line}" if line is not None else config.source
        return f"{where}: {tomlpos.dotted(path)}: {problem}"

    found = []
    for repo in config.repositories.values():
        if repo.password_file:
            why = _unreadable(repo.password_file)
            if why:
                found.append(at(("repositories", repo.name, "password_file"),
                                f"cannot read {repo.password_file}: {why}"))  # fmt: skip
    for i, target in enumerate(config.notify):
        if not notify_url_accepted(target.url):
            scheme = target.url.partition("://")[0] if "://" in target.url else target.url[:20]
            why = f"not a notification URL apprise knows (scheme {scheme!r}); see the apprise wiki"
            found.append(at(("notify", i, "url"), why))
    return found
