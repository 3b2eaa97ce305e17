"""amber config check shows each repository's options, limits and password source, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import AmberCli


def test_config_check_prints_options_and_limits_and_masks_secrets(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)  # no repository needed
    config = tmp_path / "xdg-config" / "amber" / "config.toml"  # the default path: no --config
    config.parent.mkdir(parents=True)
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
password_file = "{tmp_path / "usb.pw"}"
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
