"""status --copies after a hand-made copy and a hand-run check, without a config file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import AmberCli


def _status(cli: AmberCli, *args: str) -> dict[str, Any]:
    out = cli.run("status", "--copies", "--json", *args, check=False)
    assert out.returncode in (0, 1), out.stderr  # 1: fails 3-2-1-1-0 (too few copies), not an error
    return dict(json.loads(out.stdout))


def test_copies_and_checks_made_by_hand_count(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    cli.run("backup", str(src))
    usb = tmp_path / "usb"
    cli.run("-r", str(usb), "init")
    cli.run("copy", "--to", str(usb))

    [snap] = _status(cli)["snapshots"]  # -r only: the copy is found in the state database
    assert sorted(h["repository"] for h in snap["holders"]) == sorted([str(cli.repo), str(usb)])
    assert snap["copies"] == 2 and snap["unverified"] == 2

    cli.run("check", "--read-data")  # the main repository, verified by hand
    cli.run("-r", str(usb), "check", "--read-data-subset", "100%")
    [snap] = _status(cli)["snapshots"]
    assert snap["copies"] == 2 and snap["unverified"] == 0 and snap["errors"] == 0
    assert all(h["errors"] == 0 for h in snap["holders"])


def test_replica_with_its_own_password(cli: AmberCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    cli.run("backup", str(src))
    usb, pw = tmp_path / "usb", tmp_path / "usb.pw"
    pw.write_text("usb secret\n")
    cli.run("-r", str(usb), "--password-file", str(pw), "init")
    cli.run("copy", "--to", str(usb), "--to-password-file", str(pw))

    without = _status(cli, "--replica", f"{usb},kind=usb")
    assert [r["status"] for r in without["repositories"]] == ["ok", "unreachable"]
    with_pw = _status(cli, "--replica", f"{usb},kind=usb,password_file={pw}")
    assert [r["status"] for r in with_pw["repositories"]] == ["ok", "ok"]
    [snap] = with_pw["snapshots"]
    assert snap["copies"] == 2 and snap["media"] == ["disk", "usb"]
    env = _status(cli, "--replica", f"{usb},kind=usb,password_env=USB_PW")  # a variable that is not set
    assert env["repositories"][1]["status"] == "unreachable"
    assert "USB_PW" in env["repositories"][1]["error"]
