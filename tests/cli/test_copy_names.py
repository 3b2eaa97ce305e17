"""amber copy --from/--to NAME: a configured repository opens with its url, password source and options."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from amber.ops.state import StateDB
from tests.cli.test_copy_cli import make_src, tree
from tests.conftest import PASSWORD, AmberCli
from tests.storage.servers import S3Server, s3_server

__all__ = ["s3_server"]


def write_config(path: Path, tmp: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""{body}
[state]
path = "{tmp / "state" / "state.db"}"
audit_log = "{tmp / "state" / "audit.log"}"
""")
    return path


def usb_repo(cli: AmberCli, tmp: Path, password: str = "usb secret") -> tuple[Path, Path]:
    pw = tmp / "usb.pw"
    pw.write_text(password + "\n")
    usb = tmp / "usb-disk" / "amber"
    cli.run("-r", str(usb), "--password-file", str(pw), "init")
    return usb, pw


def test_copy_to_and_from_a_configured_name_with_its_own_password(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    usb, pw = usb_repo(cli, tmp_path)
    # the default config file ($XDG_CONFIG_HOME/amber/config.toml), found without --config
    write_config(
        tmp_path / "xdg-config" / "amber" / "config.toml",
        tmp_path,
        f"""
[repositories.usb]
url = "{usb}"
password_file = "{pw}"
kind = "usb"
""",
    )
    out = cli.run("copy", "--to", "usb")  # AMBER_PASSWORD is the main repository's, not the usb's
    assert out.stdout.startswith(f"usb ({usb}): ok, copied 1 snapshot(s)"), out.stdout
    [run] = StateDB(str(tmp_path / "state" / "state.db")).runs("copy:manual")
    assert run.status == "success" and [(d.name, d.details["location"]) for d in run.destinations] == [
        ("usb", str(usb))
    ]
    on_usb = ["-r", str(usb), "--password-file", str(pw)]
    cli.run(*on_usb, "check", "--read-data")
    # back the other way: --from NAME into a fresh repository under the global password
    fresh = tmp_path / "fresh"
    cli.run("-r", str(fresh), "init")
    back = json.loads(cli.run("-r", str(fresh), "copy", "--from", "usb", "--json").stdout)
    assert back["status"] == "ok" and len(back["copied"]) == 1
    cli.run("-r", str(fresh), "restore", "latest", "--target", str(tmp_path / "out"), "--verify")
    assert tree(tmp_path / "out" / src.relative_to("/")) == tree(src)


def test_command_line_password_wins_and_missing_env_password_is_one_line(
    cli: AmberCli, tmp_path: Path
) -> None:
    cli.run("backup", str(make_src(tmp_path / "src")))
    usb, pw = usb_repo(cli, tmp_path)
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not the usb password\n")
    config = write_config(
        tmp_path / "config.toml",
        tmp_path,
        f"""
[repositories.usb]
url = "{usb}"
password_file = "{pw}"

[repositories.ssd]
url = "{usb}"
password_env = "AMBER_TEST_UNSET_SSD_PASSWORD"
""",
    )
    given = cli.run(
        "--config", str(config), "copy", "--to", "usb", "--to-password-file", str(wrong), check=False
    )
    assert given.returncode == 12, given.stderr  # WrongPassword: the explicit file was used
    del cli.env["AMBER_PASSWORD"]  # the main repository's password comes from a file from here on
    main_pw = tmp_path / "main.pw"
    main_pw.write_text(PASSWORD + "\n")
    unset = cli.run(
        "--config", str(config), "--password-file", str(main_pw), "copy", "--to", "ssd", check=False
    )
    assert unset.returncode == 2 and "AMBER_TEST_UNSET_SSD_PASSWORD is not set" in unset.stderr
    assert unset.stderr.count("\n") == 1 and "Traceback" not in unset.stderr
    env = {"AMBER_TEST_UNSET_SSD_PASSWORD": "usb secret"}
    ok = cli.run(
        "--config", str(config), "--password-file", str(main_pw), "copy", "--to", "ssd", "--json", env=env
    )
    assert json.loads(ok.stdout)["destination"] == "ssd"


def test_unknown_name_is_one_line_exit_10_and_nothing_is_copied(cli: AmberCli, tmp_path: Path) -> None:
    cli.run("backup", str(make_src(tmp_path / "src")))
    usb, pw = usb_repo(cli, tmp_path)
    config = write_config(
        tmp_path / "config.toml",
        tmp_path,
        f"""
[repositories.usb]
url = "{usb}"
password_file = "{pw}"

[repositories.cloud]
url = "{tmp_path / "cloud"}"
""",
    )
    typo = cli.run("--config", str(config), "copy", "--to", "usb", "--to", "ubs", check=False)
    assert typo.returncode == 10, typo.stderr
    assert typo.stderr.count("\n") == 1 and "Traceback" not in typo.stderr
    assert "'ubs'" in typo.stderr and "cloud, usb" in typo.stderr and str(config) in typo.stderr
    assert not (tmp_path / "state" / "state.db").exists()  # resolved before anything was copied or recorded
    listed = cli.run("-r", str(usb), "--password-file", str(pw), "snapshots", "--json")
    assert json.loads(listed.stdout) == []
    unknown_source = cli.run("--config", str(config), "copy", "--from", "nas", "--to", "usb", check=False)
    assert unknown_source.returncode == 10 and "'nas'" in unknown_source.stderr
    no_config = cli.run("copy", "--to", "usb", check=False)  # no config file at all
    assert no_config.returncode == 10 and "no config file" in no_config.stderr, no_config.stderr


def test_copy_to_a_configured_s3_name_applies_its_object_lock_options(
    cli: AmberCli, tmp_path: Path, s3_server: S3Server
) -> None:
    cli.run("backup", str(make_src(tmp_path / "src")))
    bucket = s3_server.new_bucket(object_lock=True)
    url = f"s3:{s3_server.endpoint}/{bucket}/amber"
    cli.run("-r", url, "init", env=s3_server.env())  # no options: written without retention
    config = write_config(
        tmp_path / "config.toml",
        tmp_path,
        f"""
[repositories.cloud]
url = "{url}"
kind = "cloud"
offsite = true
options = {{ "s3.lock-mode" = "governance", "s3.lock-days" = 2, "retry-delay" = 0.01 }}
limit_upload = 100000
""",
    )
    out = cli.run("--config", str(config), "copy", "--to", "cloud", "--json", env=s3_server.env())
    status = json.loads(out.stdout)
    assert status["destination"] == "cloud" and status["location"] == url and len(status["copied"]) == 1
    raw = s3_server.client()
    listed = raw.list_objects_v2(Bucket=bucket, Prefix="amber/")["Contents"]
    written = [o["Key"] for o in listed if "/data/" in o["Key"] or "/snapshots/" in o["Key"]]
    assert any("/data/" in k for k in written) and any("/snapshots/" in k for k in written)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, hours=20)
    for key in written:  # the configured lock reached every object the copy wrote
        head = raw.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] > soon, key
    bad = cli.run("--config", str(config), "-o", "s3.lock-days=0", "copy", "--to", "cloud", check=False,
                  env=s3_server.env())  # fmt: skip
    assert bad.returncode == 2 and "s3.lock-days" in bad.stderr  # -o wins over the config, then is checked
