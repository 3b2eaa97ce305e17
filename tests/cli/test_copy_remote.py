"""amber copy to remote destinations (OpenSSH and moto on loopback), and manual copies in the state DB."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from amber.ops.state import StateDB
from tests.cli.test_copy_cli import make_src, tree
from tests.conftest import PASSWORD, AmberCli
from tests.storage.servers import S3Server, SshServer, s3_server, sshd_server

__all__ = ["s3_server", "sshd_server"]


def copy_round_trip(cli: AmberCli, tmp_path: Path, dest: str, env: dict[str, str]) -> None:
    """Copy to ``dest``, verify and restore there, then copy again: nothing new moves."""
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    (src / "a" / "late.txt").write_text("written after the first backup\n")
    cli.run("backup", str(src))
    cli.run("-r", dest, "init", env=env)
    first = json.loads(cli.run("copy", "--to", dest, "--json", env=env).stdout)
    assert first["status"] == "ok" and len(first["copied"]) == 2 and first["bytes_added"] > 2 << 20
    cli.run("-r", dest, "check", "--read-data", env=env)
    out = tmp_path / "restored"
    cli.run("-r", dest, "restore", "latest", "--target", str(out), "--verify", env=env)
    assert tree(out / src.relative_to("/")) == tree(src)
    again = json.loads(cli.run("copy", "--to", dest, "--json", env=env).stdout)
    assert again["copied"] == [] and again["already"] == 2 and again["bytes_added"] == 0
    listed = json.loads(cli.run("-r", dest, "snapshots", "--json", env=env).stdout)
    assert len(listed) == 2


def test_copy_to_sftp(cli: AmberCli, tmp_path: Path, sshd_server: SshServer) -> None:
    copy_round_trip(cli, tmp_path, sshd_server.url(tmp_path / "nas-repo"), sshd_server.env())


def test_copy_to_s3(cli: AmberCli, tmp_path: Path, s3_server: S3Server) -> None:
    dest = f"s3:{s3_server.endpoint}/{s3_server.new_bucket()}/amber"
    copy_round_trip(cli, tmp_path, dest, s3_server.env())


def test_manual_copy_is_recorded_and_counted_while_the_disk_is_away(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    usb = tmp_path / "usb"
    cli.run("-r", str(usb), "init")
    state = tmp_path / "state" / "state.db"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[repositories.main]
url = "{cli.repo}"
password_file = "{tmp_path / 'pass'}"

[repositories.usb]
url = "{usb}/"
password_file = "{tmp_path / 'pass'}"
kind = "usb"
offline = true

[state]
path = "{state}"
audit_log = "{tmp_path / 'state' / 'audit.log'}"
""")
    out = cli.run("--config", str(config), "copy", "--to", str(usb), "--json").stdout
    copied = json.loads(out)["copied"]
    assert len(copied) == 1
    [run] = StateDB(str(state)).runs("copy:manual")
    assert run.status == "success" and run.snapshot_ids == [copied[0]["source"]]
    [step] = run.destinations
    assert (step.name, step.step, step.status) == ("usb", "copy", "success")  # the config's name
    assert step.snapshot_id == copied[0]["copy"] and step.details["source"] == copied[0]["source"]
    assert step.details["manual"] is True
    shutil.move(str(usb), str(tmp_path / f"unplugged-{uuid.uuid4().hex[:6]}"))
    status = cli.run("--config", str(config), "status", "--copies", "--json", check=False)
    report = json.loads(status.stdout)
    usb_state = next(r for r in report["repositories"] if r["name"] == "usb")
    assert usb_state["status"] == "unreachable"
    [snap] = report["snapshots"]
    holders = {h["repository"]: h["snapshot"] for h in snap["holders"]}
    assert holders == {"main": snap["id"], "usb": "(recorded)"} and snap["copies"] == 2


def test_failed_manual_copy_is_recorded(cli: AmberCli, tmp_path: Path) -> None:
    cli.run("backup", str(make_src(tmp_path / "src")))
    missing = tmp_path / "never-initialised"
    result = cli.run("copy", "--to", str(missing), check=False)
    assert result.returncode != 0
    [run] = StateDB(str(tmp_path / "xdg-state" / "amber" / "state.db")).runs("copy:manual")
    assert run.status == "failed" and run.destinations[0].status == "failed"
    assert run.destinations[0].name == str(missing) and run.errors


def test_init_with_copied_chunker_params_then_copy(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    twin = tmp_path / "twin"
    bad = cli.run("-r", str(twin), "init", "--copy-chunker-params", check=False)
    assert bad.returncode == 2 and "go together" in bad.stderr and "Traceback" not in bad.stderr
    made = cli.run("-r", str(twin), "init", "--copy-chunker-params", "--from-repo", str(cli.repo))
    assert "chunker shared with" in made.stdout
    first = json.loads(cli.run("copy", "--to", str(twin), "--json").stdout)
    assert first["status"] == "ok" and len(first["copied"]) == 1
    ours = json.loads(cli.run("snapshots", "--json").stdout)
    theirs = json.loads(cli.run("-r", str(twin), "snapshots", "--json").stdout)
    assert theirs[0]["tree"] == ours[0]["tree"]  # same blob IDs: the tree was copied as is
    cli.run("-r", str(twin), "check", "--read-data")
    out = tmp_path / "restored"
    cli.run("-r", str(twin), "restore", "latest", "--target", str(out), "--verify")
    assert tree(out / src.relative_to("/")) == tree(src)
