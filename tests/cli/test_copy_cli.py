"""amber copy end to end: different passwords, several destinations, an offline one, any replica."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import PASSWORD, AmberCli


def make_src(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    for i in range(20):
        (root / "a" / f"f{i}.txt").write_bytes(f"line {i}\n".encode() * (i * 50))
    (root / "a" / "b" / "big.bin").write_bytes(os.urandom(2 << 20))
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def other_repo(cli: AmberCli, tmp_path: Path, name: str, password: str) -> tuple[Path, Path]:
    """A second repository with its own password (in a file)."""
    pw = tmp_path / f"{name}.pw"
    pw.write_text(password + "\n")
    path = tmp_path / name
    cli.run("-r", str(path), "--password-file", str(pw), "init")
    return path, pw


def test_copy_to_repo_with_other_password_then_restore_and_check_there(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    usb, usb_pw = other_repo(cli, tmp_path, "usb", "usb secret")
    out = cli.run("copy", "--to", str(usb), "--to-password-file", str(usb_pw))
    assert "ok, copied 1 snapshot(s)" in out.stdout
    on_usb = ["-r", str(usb), "--password-file", str(usb_pw)]
    cli.run(*on_usb, "check", "--read-data")
    cli.run(*on_usb, "restore", "latest", "--target", str(tmp_path / "out"), "--verify")
    assert tree(tmp_path / "out" / src.relative_to("/")) == tree(src)
    again = cli.run("copy", "--to", str(usb), "--to-password-file", str(usb_pw), "--json")
    status = json.loads(again.stdout)
    assert status["status"] == "ok" and status["copied"] == [] and status["already"] == 1


def test_restic_style_from_and_filters(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", "--tag", "daily", str(src))
    cli.run("backup", "--tag", "weekly", str(src))
    nas, nas_pw = other_repo(cli, tmp_path, "nas", "nas secret")
    main_pw = tmp_path / "main.pw"
    main_pw.write_text(PASSWORD)
    cli.run("-r", str(nas), "--password-file", str(nas_pw), "copy", "--from", str(cli.repo),
            "--from-password-file", str(main_pw), "--tag", "weekly")  # fmt: skip
    listed = json.loads(cli.run("-r", str(nas), "--password-file", str(nas_pw), "snapshots", "--json").stdout)
    assert [s["tags"] for s in listed] == [["weekly"]]


def test_several_destinations_one_offline_then_caught_up(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    ssd, _ = other_repo(cli, tmp_path, "ssd", PASSWORD)
    usb = tmp_path / "usb-unplugged"
    result = cli.run("copy", "--to", str(ssd), "--to", str(usb), "--json", check=False)
    assert result.returncode == 1
    statuses = {s["location"]: s for s in map(json.loads, result.stdout.splitlines())}
    assert statuses[str(ssd)]["status"] == "ok" and len(statuses[str(ssd)]["copied"]) == 1
    assert statuses[str(usb)]["status"] == "offline"
    assert "1 of 2 destination(s) not updated" in result.stderr
    cli.run("-r", str(usb), "init")  # plugged in again
    cli.run("backup", str(src))
    result = cli.run("copy", "--to", str(ssd), "--to", str(usb), "--json")
    statuses = {s["location"]: s for s in map(json.loads, result.stdout.splitlines())}
    assert len(statuses[str(ssd)]["copied"]) == 1 and statuses[str(ssd)]["already"] == 1
    assert len(statuses[str(usb)]["copied"]) == 2  # caught up
    cli.run("-r", str(usb), "restore", "latest", "--target", str(tmp_path / "out"))
    assert tree(tmp_path / "out" / src.relative_to("/")) == tree(src)


def test_usage_and_missing_destination_errors_are_one_line(cli: AmberCli, tmp_path: Path) -> None:
    neither = cli.run("copy", check=False)
    assert neither.returncode == 2 and neither.stderr.count("\n") == 1
    missing = cli.run("copy", "--to", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 10, missing.stderr
    assert missing.stderr.strip().startswith("amber:") and "Traceback" not in missing.stderr


def test_status_copies_pass_and_fail(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    cloud, _ = other_repo(cli, tmp_path, "cloud", PASSWORD)
    usb, _ = other_repo(cli, tmp_path, "usb", PASSWORD)
    cli.run("copy", "--to", str(cloud), "--to", str(usb))
    args = ["status", "--copies", "--replica", f"{cloud},kind=cloud,offsite,immutable",
            "--replica", f"{usb},kind=usb,offline,name=usb"]  # fmt: skip
    passed = cli.run(*args, "--check", "--json")
    doc = json.loads(passed.stdout)
    assert doc["passed"] and doc["snapshots"][0]["copies"] == 3
    assert {h["repository"] for h in doc["snapshots"][0]["holders"]} == {str(cli.repo), str(cloud), "usb"}
    cli.run("backup", str(src))  # a new snapshot, not copied yet
    failed = cli.run(*args, "--check", check=False)
    assert failed.returncode == 1
    assert "FAIL" in failed.stdout and "missing: 2 more copies" in failed.stdout
    assert failed.stderr.strip() == "amber: 1 snapshot(s) fail 3-2-1-1-0"


def test_repair_packs_from_replica(cli: AmberCli, tmp_path: Path) -> None:
    src = make_src(tmp_path / "src")
    cli.run("backup", str(src))
    replica, replica_pw = other_repo(cli, tmp_path, "replica", "replica secret")
    cli.run("copy", "--to", str(replica), "--to-password-file", str(replica_pw))
    packs = sorted((cli.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else -1)
    packs[-1].unlink()  # the biggest pack is lost
    assert cli.run("check", check=False).returncode == 18
    out = cli.run("repair", "packs", "--from", str(replica), "--from-password-file", str(replica_pw))
    assert "healed 1 snapshot(s)" in out.stdout
    cli.run("check", "--read-data")
    cli.run("restore", "latest", "--target", str(tmp_path / "out"), "--verify")
    assert tree(tmp_path / "out" / src.relative_to("/")) == tree(src)
