"""amber config check shows each repository's options, limits and password source, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import AmberCli


def test_config_check_prints_options_and_limits_and_masks_secrets(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)  # no repository needed
    config = tmp_path / "xdg-config" / "amber" / "config.toml"  # the default path: no --config
    config.parent.mkdir(parents=True)
    usb_pw = tmp_path / "usb.pw"  # config check reads every password file
    usb_pw.write_text("secret\n")
    config.write_text(f"""
[repositories.cloud]
url = "s3:https://s3.eu-central-1.amazonaws.com/my-bucket/amber"
password_command = "echo hunter2-command"
kind = "cloud"
offsite = true
options = {{ "s3.lock-mode" = "governance", "s3.lock-days" = 30, "connections" = 4 }}
limit_upload = 2048

[repositories.nas]
url = "rest:https://me:hunter2-url@nas.local:8000/amber/"
password_env = "NAS_PASSWORD"
limit_download = 512

[repositories.usb]
url = "{tmp_path / "usb"}"
password_file = "{usb_pw}"
kind = "usb"
""")
    out = cli.run("config", "check").stdout
    lines = out.splitlines()
    cloud = lines.index(
        "repository cloud: s3:https://s3.eu-central-1.amazonaws.com/my-bucket/amber (cloud, offsite)"
    )
    assert lines[cloud + 1 : cloud + 4] == [
        "  options: connections=4, s3.lock-days=30, s3.lock-mode=governance",
        "  limits: upload 2048 KiB/s, download none",
        "  password: command",
    ]
    nas = lines.index("repository nas: rest:https://me:***@nas.local:8000/amber/ (disk)")
    assert lines[nas + 1 : nas + 3] == [
        "  limits: upload none, download 512 KiB/s",
        "  password: env NAS_PASSWORD",
    ]
    usb = lines.index(f"repository usb: {tmp_path / 'usb'} (usb)")
    assert lines[usb + 1] == f"  password: file {tmp_path / 'usb.pw'}"
    assert "hunter2" not in out
    summary = cli.run("config", "check", "--json").stdout
    assert "hunter2" not in summary
    repos = json.loads(summary)["repositories"]
    assert repos["cloud"]["options"] == {
        "connections": "4",
        "s3.lock-days": "30",
        "s3.lock-mode": "governance",
    }
    assert (repos["cloud"]["limit_upload"], repos["nas"]["limit_download"]) == (2048, 512)
    assert repos["nas"]["url"] == "rest:https://me:***@nas.local:8000/amber/"
    assert [repos[n]["password"] for n in ("cloud", "nas", "usb")] == ["command", "env", "file"]


def test_config_check_fails_on_missing_password_file_and_unknown_notify_scheme(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    config = tmp_path / "config.toml"
    good_pw = tmp_path / "good.pw"
    good_pw.write_text("secret\n")
    config.write_text(f"""
[repositories.usb]
url = "{tmp_path / "usb"}"
password_file = "{tmp_path / "missing.pw"}"

[[notify]]
url = "jsn://localhost/alerts"
""")
    res = cli.run("--config", str(config), "config", "check", check=False)
    assert res.returncode == 21, res.stderr
    assert f"{config}:4: repositories.usb.password_file: cannot read {tmp_path / 'missing.pw'}: " \
           "No such file or directory" in res.stderr  # fmt: skip
    assert f"{config}:7: notify[0].url: not a notification URL apprise knows (scheme 'jsn')" in res.stderr
    assert res.stderr.strip().splitlines()[-1] == f"amber: {config}: 2 problems"
    assert "read, but the checks below failed" in res.stdout
    as_json = json.loads(cli.run("--config", str(config), "config", "check", "--json", check=False).stdout)
    assert as_json["ok"] is False and len(as_json["problems"]) == 2
    # fixed: both checks pass (json:// is a real apprise scheme)
    config.write_text(config.read_text().replace("missing.pw", "good.pw").replace("jsn://", "json://"))
    ok = cli.run("--config", str(config), "config", "check")
    assert ok.stdout.startswith(f"{config}: ok") and ok.stderr == ""
