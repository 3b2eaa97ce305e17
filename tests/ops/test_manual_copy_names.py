"""`amber copy --from/--to` arguments: configured names first, then locations (real config files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import RepositoryNotFound
from amber.ops.run.manual_copy import ManualCopy, endpoints
from amber.services.context import OperationContext
from amber.services.session import PasswordSource
from amber.storage.url import BackendOptions

GLOBAL = PasswordSource(password_file="/global.pw")
GIVEN = PasswordSource(password_command="echo given")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[repositories.cloud]
url = "s3:http://127.0.0.1:9/bucket/amber"
password_file = "{tmp_path / "cloud.pw"}"
options = {{ "s3.lock-mode" = "compliance", "s3.lock-days" = 7, "connections" = 3 }}
limit_upload = 300

[repositories.usb]
url = "{tmp_path / "usb"}/"
limit_download = 50
""")
    return path


def job(config: Path | None, source: str, *targets: str, given: bool = False,
        context: OperationContext | None = None) -> ManualCopy:  # fmt: skip
    return ManualCopy(source, list(targets), GLOBAL, GIVEN if given else GLOBAL, config_path=str(config),
                      target_passwords_given=given, context=context)  # fmt: skip


def test_a_name_opens_with_its_url_options_limits_and_password(config: Path, tmp_path: Path) -> None:
    source, [cloud] = endpoints(job(config, "usb", "cloud"))
    assert (cloud.name, cloud.location) == ("cloud", "s3:http://127.0.0.1:9/bucket/amber")
    assert cloud.passwords == PasswordSource(str(tmp_path / "cloud.pw"))
    assert cloud.options is not None and cloud.options.limit_upload_kib == 300
    assert dict(cloud.options.extra) == {
        "s3.lock-mode": "compliance",
        "s3.lock-days": "7",
        "connections": "3",
    }
    assert (source.name, source.location) == ("usb", f"{tmp_path / 'usb'}/")
    assert source.passwords == GLOBAL  # no password source configured: the global one
    assert source.options is not None and source.options.limit_download_kib == 50


def test_command_line_options_and_passwords_win(config: Path) -> None:
    """The operation's -o and --limit-upload (its context, no process defaults)."""
    ctx = OperationContext(BackendOptions(limit_upload_kib=100.0, extra={"connections": "8"}))
    _, [cloud] = endpoints(job(config, "usb", "cloud", given=True, context=ctx))
    assert cloud.passwords == GIVEN
    assert cloud.options is not None and cloud.options.extra["connections"] == "8"  # -o wins
    assert cloud.options.limit_upload_kib == 100  # the lower limit


def test_locations_keep_working(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "disk").mkdir()
    (tmp_path / "usb").mkdir()  # a directory with a configured name: the name wins
    source, targets = endpoints(job(config, str(tmp_path / "usb"), "disk", "./usb", "usb", "/elsewhere/x"))
    assert (source.name, source.passwords) == ("usb", GLOBAL)  # a configured url: its name and options
    assert source.options is not None and source.options.limit_download_kib == 50
    assert [(t.name, t.location) for t in targets] == [
        ("disk", "disk"), ("usb", "./usb"), ("usb", f"{tmp_path / 'usb'}/"), ("/elsewhere/x", "/elsewhere/x")
    ]  # fmt: skip
    assert targets[0].options is None and targets[3].options is None  # the process defaults


@pytest.mark.parametrize(
    ("source", "targets", "unknown"),
    [("usb", ["cloud", "ubs"], "'ubs'"), ("nas", ["usb"], "'nas'"), ("usb", ["usb", "USB"], "'USB'")],
)
def test_unknown_names_name_themselves_and_the_known_ones(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    targets: list[str],
    unknown: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RepositoryNotFound) as err:
        endpoints(job(config, source, *targets))
    assert unknown in err.value.message and "(cloud, usb)" in err.value.message
    assert str(config) in err.value.message and err.value.exit_code == 10


def test_without_a_config_file_a_name_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    with pytest.raises(RepositoryNotFound, match=r"no config file at .*nothing/amber/config.toml"):
        endpoints(ManualCopy(str(tmp_path), ["usb"], GLOBAL, GLOBAL))
    broken = tmp_path / "nothing" / "amber" / "config.toml"
    broken.parent.mkdir(parents=True)
    broken.write_text("[repositories.usb]\n")  # no url: not used, and the reason is given
    with pytest.raises(RepositoryNotFound, match=r"config not used: .*repositories.usb: missing key 'url'"):
        endpoints(ManualCopy(str(tmp_path), ["usb"], GLOBAL, GLOBAL))
