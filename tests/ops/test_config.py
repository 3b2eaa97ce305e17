"""Config parsing: the full example loads, and every error names its line and key path."""
# ruff: noqa: E501  (the error table reads best one case per line)

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amber.errors import ConfigError
from amber.ops.config import tomlpos
from amber.ops.config.model import load_config, parse_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"

BASE = """\
[repositories.local]
url = "/srv/amber"
password_file = "/etc/amber/pass"

[repositories.usb]
url = "/media/usb/amber"
password_command = "pass show amber"
kind = "usb"
offline = true

[retention.default]
keep_daily = 7
keep_within = "2d"

[jobs.home]
paths = ["/home/me"]
repository = "local"
mirrors = ["usb"]
retention = "default"
schedule = "*-*-* 02:00:00"
check = { schedule = "weekly", read_data_subset = "5%" }
"""


def documented_example() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- example -->\n```toml\n(.*?)```", text, re.S)
    assert match, "docs/config.md must contain the complete example after <!-- example -->"
    return match.group(1)


def test_documented_example_loads_and_uses_every_section() -> None:
    cfg = parse_config(documented_example(), "config.md")
    assert cfg.repositories and cfg.retention and cfg.jobs and cfg.notify
    job = next(iter(cfg.jobs.values()))
    assert job.mirrors and job.retention and job.schedule and job.hooks.before
    assert cfg.limits.nice is not None and cfg.limits.memory_max_bytes


def test_documented_example_mentions_every_key() -> None:
    text = DOCS.read_text()
    example = documented_example()
    keys = set(re.findall(r"^\s*([a-z_]+)\s*=", example, re.M))
    keys |= set(re.findall(r"([a-z_]+)\s*=", "".join(re.findall(r"\{[^}]*\}", example))))
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"keys without documentation: {missing}"


def test_base_config_values() -> None:
    cfg = parse_config(BASE)
    job = cfg.jobs["home"]
    assert job.repository == "local" and job.mirrors == ("usb",)
    assert job.check.read_data_subset == "5%" and job.check.schedule == "weekly"
    assert cfg.repositories["usb"].offline and cfg.repositories["usb"].kind == "usb"
    assert cfg.retention["default"].keep_daily == 7
    assert cfg.alerts.capacity_percent == 80 and cfg.notify == ()


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    cfg = parse_config(BASE.replace('paths = ["/home/me"]', 'paths = ["~/Docs"]\nexclude = ["~/.cache", "*.tmp"]'))
    assert cfg.jobs["home"].paths == ("/home/tester/Docs",)
    assert cfg.jobs["home"].exclude == ("/home/tester/.cache", "*.tmp")


# (replace this, with that) in BASE -> expected "line: key: message fragment"
ERRORS = [
    ('paths = ["/home/me"]', 'paths = "/home/me"', r":16: jobs\.home\.paths: expected a list of strings"),
    ('paths = ["/home/me"]', "paths = [1, 2]", r":16: jobs\.home\.paths: expected a list of strings"),
    ('mirrors = ["usb"]', 'mirrors = ["usb", "nas"]', r":18: jobs\.home\.mirrors\[1\]: no repository named 'nas'"),
    ('mirrors = ["usb"]', 'mirrors = ["local"]', r":18: jobs\.home\.mirrors: mirror 'local' is the job's own repository"),
    ('mirrors = ["usb"]', 'mirrors = ["usb", "local"]', r":18: jobs\.home\.mirrors: mirror 'local' is the job's own repository"),
    ('repository = "local"\n', "", r":15: jobs\.home: missing key 'repository'"),
    ('retention = "default"', 'retention = "gone"', r":19: jobs\.home\.retention: no retention policy"),
    ('schedule = "*-*-* 02:00:00"', 'schedule = "at two"', r":20: jobs\.home\.schedule: .*OnCalendar"),
    ('schedule = "*-*-* 02:00:00"', 'schedule = "*-*-* 25:00"', r":20: jobs\.home\.schedule: hour"),
    ('"5%"', '"lots"', r":21: jobs\.home\.check\.read_data_subset: expected a percentage"),
    ("offline = true", 'offline = "yes"', r":9: repositories\.usb\.offline: expected true or false, got a string"),
    ('kind = "usb"', 'kind = "tape"', r":8: repositories\.usb\.kind: expected one of disk"),
    ('url = "/srv/amber"', 'url = ""', r":2: repositories\.local\.url: must not be empty"),
    ('url = "/srv/amber"\n', "", r":1: repositories\.local: missing key 'url'"),
    ('password_file = "/etc/amber/pass"', 'password = "hunter2"', r":3: repositories\.local\.password: plain-text"),
    ('kind = "usb"', 'kind = "usb"\npassword_env = "X"', r":9: repositories\.usb\.password_env: give only one"),
    ("keep_daily = 7", "keep_daily = -1", r":12: retention\.default\.keep_daily: must be at least 0"),
    ("keep_daily = 7", "keep_daily = true", r":12: retention\.default\.keep_daily: expected an integer"),
    ('keep_within = "2d"', 'keep_within = "two days"', r":13: retention\.default\.keep_within: expected a duration"),
    ("keep_daily = 7\nkeep_within = \"2d\"\n", "", r":11: retention\.default: policy keeps nothing"),
    ('repository = "local"', 'repositry = "local"', r":17: jobs\.home\.repositry: unknown key"),
    ('paths = ["/home/me"]\n', "", r":15: jobs\.home: a job needs paths, databases or stdin_command"),
    ('[jobs.home]', '[limits]\nnice = 30\n\n[jobs.home]', r":16: limits\.nice: must be at most 19"),
    ('[jobs.home]', '[limits]\nmemory_max = "lots"\n[jobs.home]', r":16: limits\.memory_max: expected a size"),
    ('[jobs.home]', '[limits]\nionice_class = "low"\n[jobs.home]', r":16: limits\.ionice_class: expected one of"),
    ('[jobs.home]', '[[notify]]\nurl = "x"\n[[notify]]\nurl = "y"\nevents = ["oops"]\n[jobs.home]',
     r":19: notify\[1\]\.events\[0\]: unknown event 'oops'"),
    ('[jobs.home]', '[[notify]]\nurl = "x"\nmin_interval = "soon"\n[jobs.home]',
     r":17: notify\[0\]\.min_interval: expected a duration"),
    ('[jobs.home]', '[state]\npath = 3\n[jobs.home]', r":16: state\.path: expected a string, got an integer"),
    ('[jobs.home]', '[bogus]\n[jobs.home]', r":15: bogus: unknown key"),
    ('keep_daily = 7', 'keep_daily = 7\nkeep_daily = 8', r":13: invalid TOML: Cannot overwrite a value"),
    ('[repositories.local]', 'limits = 3\n[repositories.local]', r":1: limits: expected a table, got an integer"),
    ('[jobs.home]', '[jobs.home]\n[jobs.home]', r":16: invalid TOML"),
    ('retention = "default"', 'retention = "default"\nsnapshot = "xfs"', r":20: jobs\.home\.snapshot: expected one of btrfs"),
    ('retention = "default"', 'retention = "default"\nsnapshot_keep = -1', r":20: jobs\.home\.snapshot_keep: must be at least 0"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), ERRORS)
def test_errors_name_line_and_key(old: str, new: str, expected: str) -> None:
    assert old in BASE
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.replace(old, new, 1), "config.toml")
    assert re.match(r"config\.toml" + expected, info.value.message), info.value.message
    assert "\n" not in info.value.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read config file: .*docs/config\.md"):
        load_config(str(tmp_path / "nope.toml"))


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "amber").mkdir()
    (tmp_path / "amber" / "config.toml").write_text(BASE)
    assert load_config().source == str(tmp_path / "amber" / "config.toml")


LINES = [
    ('[a]\nx = 1\n[b.c]\ny = 2\n', ("b", "c", "y"), 4),
    ('[[n]]\nu = 1\n[[n]]\nu = 2\n', ("n", 1, "u"), 4),
    ('[[n]]\nu = 1\n[[n]]\nu = 2\n', ("n", 0, "u"), 2),
    ('[t]\ns = """\nk = 1\n"""\nk = 2\n', ("t", "k"), 5),
    ('[jobs."my job"]\npaths = []\n', ("jobs", "my job", "paths"), 2),
    ('a.b = 1\n[x]\nc = { d = 1 }\n', ("x", "c", "d"), 3),
    ('[x]\n', ("x", "missing"), 1),
]  # fmt: skip


@pytest.mark.parametrize(("text", "path", "line"), LINES)
def test_key_lines(text: str, path: tuple[str | int, ...], line: int) -> None:
    assert tomlpos.line_of(tomlpos.key_lines(text), path) == line


def test_dotted_quotes_odd_names() -> None:
    assert tomlpos.dotted(("jobs", "my job", "paths", 2)) == 'jobs."my job".paths[2]'


def test_snapshot_keys() -> None:
    text = BASE.replace('retention = "default"', 'retention = "default"\nsnapshot = "auto"\nsnapshot_keep = 3\n'
                        'hooks = { pre_snapshot = ["sync"], post_snapshot = ["true"], stop = ["a"], start = ["b"] }')
    job = parse_config(text).jobs["home"]
    assert (job.snapshot, job.snapshot_keep, job.snapshot_dir) == ("auto", 3, "")
    assert (job.hooks.pre_snapshot, job.hooks.post_snapshot, job.hooks.stop, job.hooks.start) == (
        ("sync",), ("true",), ("a",), ("b",))
    assert parse_config(BASE).jobs["home"].snapshot is None
    bad_name = text.replace("[jobs.home]", '[jobs."my home"]')
    with pytest.raises(ConfigError, match="needs a name of letters"):
        parse_config(bad_name)
    with pytest.raises(ConfigError, match="snapshot needs paths, not stdin_command"):
        parse_config(text.replace('paths = ["/home/me"]', 'stdin_command = ["pg_dump"]'))
