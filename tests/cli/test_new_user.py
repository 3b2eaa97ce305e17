"""What a new user meets first: repositories found from the config, one-line errors, plain counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import AmberCli


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Usage:" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("amber: "), stderr
    return lines[0]


def _config(tmp: Path, body: str) -> Path:
    path = tmp / "xdg-config" / "amber" / "config.toml"  # the default location: found without --config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body + f'\n[state]\npath = "{tmp / "state.db"}"\naudit_log = "{tmp / "audit.log"}"\n')
    return path


@pytest.mark.slow
def test_config_gives_the_repository_and_r_takes_names(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "unused", tmp_path)
    del cli.env["AMBER_REPOSITORY"]
    home, usb = tmp_path / "home-repo", tmp_path / "usb-repo"
    usb_pw = tmp_path / "usb.pw"
    usb_pw.write_text("usb secret\n")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    _config(tmp_path, f"""
[repositories.home]
url = "{home}"

[repositories.usb]
url = "{usb}"
password_file = "{usb_pw}"

[jobs.desktop]
paths = ["{src}"]
repository = "home"
""")
    cli.run("init")  # the only job's repository, with AMBER_PASSWORD (home has no password source)
    assert (home / "config").exists()
    cli.run("-r", "usb", "init")  # a configured name: its url and its own password file
    assert (usb / "config").exists()
    cli.run("backup", str(src))
    cli.run("-r", "usb", "backup", str(src))
    # the README's drill works as shown: the only job's repository
    drilled = json.loads(cli.run("drill", "--files", "20", "--json").stdout.splitlines()[-1])
    assert drilled["status"] == "success" and drilled["files"] == 20 and drilled["repository"] == "home"
    listed = cli.run("-r", "usb", "snapshots").stdout
    assert listed.rstrip().endswith("\n1 snapshot"), listed
    # the usb's url as a location opens with the usb's password file too; a password given on
    # the command line wins over the configured one
    assert cli.run("-r", str(usb), "snapshots").returncode == 0
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not it\n")
    assert cli.run("-r", "usb", "--password-file", str(wrong), "snapshots", check=False).returncode == 12
    # with two jobs on different repositories, -r is needed, and the message lists the names
    _config(tmp_path, f"""
[repositories.home]
url = "{home}"

[repositories.usb]
url = "{usb}"
password_file = "{usb_pw}"

[jobs.a]
paths = ["{src}"]
repository = "home"

[jobs.b]
paths = ["{src}"]
repository = "usb"
""")
    res = cli.run("snapshots", check=False)
    assert res.returncode == 2
    assert "no repository given: use -r/--repo (a location, or a name in " in _one_error_line(res.stderr)
    assert "home, usb" in res.stderr
    assert cli.run("drill", "--job", "b", "--files", "3").returncode == 0


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    res = cli.run("snapshot", check=False)
    assert res.returncode == 2
    assert _one_error_line(res.stderr) == (
        "amber: no such command 'snapshot'; did you mean 'snapshots'? (see 'amber --help')"
    )
    res = cli.run("backup", "--no-such-flag", check=False)
    assert res.returncode == 2
    assert _one_error_line(res.stderr).startswith("amber: backup: no such option '--no-such-flag'")
    res = cli.run("restore", check=False)
    assert _one_error_line(res.stderr) == (
        "amber: restore: missing argument 'SNAPSHOT' (see 'amber restore --help')"
    )
    res = cli.run("init", "-r", str(tmp_path / "other"), check=False)  # where restic takes it
    assert res.returncode == 2
    assert _one_error_line(res.stderr) == (
        "amber: init: -r is an option of amber itself: put it before the command (amber -r REPO init)"
    )
    res = cli.run("key", "list", "--debug", check=False)
    assert _one_error_line(res.stderr) == (
        "amber: key list: --debug is an option of amber itself: put it before the command"
        " (amber --debug key list)"
    )


def test_no_password_is_one_line_naming_the_password_file_variable(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    env = {k: v for k, v in cli.env.items() if k != "AMBER_PASSWORD"}
    cli.env = env
    res = cli.run("init", check=False)  # stdin is not a terminal: no prompt
    assert res.returncode == 2
    line = _one_error_line(res.stderr)
    assert line.startswith("amber: no password: ") and "AMBER_PASSWORD_FILE" in line


def test_errors_name_what_they_are_about(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    missing = tmp_path / "no-such-dir"
    res = cli.run("backup", str(src), str(missing), check=False)
    assert res.returncode == 3
    assert res.stderr.count(str(missing)) == 1, res.stderr  # once, with the reason
    assert f"skipped: {missing}: no such file or directory" in res.stderr
    res = cli.run("restore", "latest", "--target", "/proc/nope", check=False)
    assert res.returncode == 2
    assert _one_error_line(res.stderr) == (
        "amber: cannot create restore target /proc/nope: No such file or directory"
    )
    # init --from-repo with the wrong password: which repository refused it
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not the password\n")
    res = cli.run("-r", str(tmp_path / "new"), "init", "--copy-chunker-params", "--from-repo", str(cli.repo),
                  "--from-password-file", str(wrong), check=False)  # fmt: skip
    assert res.returncode == 12
    assert str(cli.repo) in _one_error_line(res.stderr)


def test_counts_are_singular_for_one(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "only.odt").write_text("x")
    (src / "other.txt").write_text("y")
    cli.run("backup", str(src))
    assert cli.run("snapshots").stdout.rstrip().endswith("\n1 snapshot")
    assert cli.run("find", "*.odt").stderr.strip() == "1 match"
    assert cli.run("check").stdout.startswith("checked 1 snapshot, 2 packs, ")
    restored = cli.run("restore", "latest", "--target", str(tmp_path / "t"), "--verify").stdout
    assert "restored 2 files, " in restored and "verified 2 files" in restored


def test_read_data_subset_says_how_many_packs_it_read(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    cli.run("backup", str(src))
    packs = [p.name for p in (cli.repo / "data").rglob("*") if p.is_file()]
    groups = {int(p[:8], 16) % 7 for p in packs}
    empty = next(n for n in range(1, 8) if n - 1 not in groups)  # 2 packs cannot fill 7 groups
    full = next(n for n in range(1, 8) if n - 1 in groups)
    out = cli.run("check", "--read-data-subset", f"{empty}/7").stdout
    assert f"read 0 of {len(packs)} packs (subset {empty}/7 picks packs by their ID" in out
    out = cli.run("check", "--read-data-subset", f"{full}/7").stdout
    read = sum(int(p[:8], 16) % 7 == full - 1 for p in packs)
    assert f"read {read} of {len(packs)} packs; no errors found" in out


def test_every_option_has_help_text() -> None:
    import click

    from amber.cli.main import cli

    ctx = click.Context(cli)
    missing = []

    def walk(cmd: click.Command, path: str) -> None:
        missing.extend(f"{path} {p.opts[-1]}" for p in cmd.params
                       if isinstance(p, click.Option) and not p.help and not p.hidden)  # fmt: skip
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}")

    walk(cli, "amber")
    assert missing == []
