"""ops.erasure: which places --everywhere purges, each on its own, and the exit code it comes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.ops.config.model import parse_config
from amber.ops.erasure import (
    FAILED,
    PLANNED,
    PURGED,
    REFUSED,
    UNREACHABLE,
    Place,
    PlaceOutcome,
    exit_code,
    places,
    purge_everywhere,
)
from amber.services import session
from amber.services.context import OperationContext
from amber.services.purge import PurgeRequest
from tests.conftest import PASSWORD
from tests.services.erasure_support import backup, holds_bytes_of, open_repo, random_bytes, stored_plaintexts


def _config(tmp: Path, names: list[str]) -> str:
    (tmp / "pass").write_text(PASSWORD + "\n")
    pw = tmp / "pass"
    repos = "".join(f'[repositories.{n}]\nurl = "{tmp / n}"\npassword_file = "{pw}"\n\n' for n in names)
    state = tmp / "state"
    return repos + f'[state]\npath = "{state / "state.db"}"\naudit_log = "{state / "audit.log"}"\n'


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([PURGED, PURGED], 0),
        ([PLANNED], 0),
        ([PURGED, REFUSED], 38),
        ([REFUSED, REFUSED], 38),
        ([PURGED, REFUSED, UNREACHABLE], 39),
        ([FAILED], 39),
    ],
)
def test_exit_code(statuses: list[str], code: int) -> None:
    place = Place("x", "/x", session.PasswordSource())
    assert exit_code([PlaceOutcome(place, s) for s in statuses]) == code


def test_places_start_with_the_repository_and_list_each_place_once(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, ["main", "mirror", "usb"]))
    primary = Place("main", str(tmp_path / "main"), session.PasswordSource())
    found = places(config, primary, session.PasswordSource())
    assert [p.name for p in found] == ["main", "mirror", "usb"]
    assert places(None, primary, session.PasswordSource()) == [primary]


def test_an_unreachable_place_is_reported_and_the_others_are_purged(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    secret = random_bytes(30_000, "secret")
    (src / "secret.bin").write_bytes(secret)
    (src / "kept.txt").write_bytes(b"kept" * 500)
    for name in ("main", "mirror"):
        session.create(str(tmp_path / name), PASSWORD.encode()).close()
        backup(tmp_path / name, src)
    config = parse_config(_config(tmp_path, ["main", "gone", "mirror"]))
    pw = session.PasswordSource(password_file=str(tmp_path / "pass"))
    targets = places(config, Place("main", str(tmp_path / "main"), pw), pw)
    outcomes = purge_everywhere(targets, PurgeRequest(["secret.bin"]), OperationContext(),
                                str(tmp_path / "state"), catalog_enabled=False)  # fmt: skip
    assert [(o.place.name, o.status) for o in outcomes] == [
        ("main", PURGED), ("gone", UNREACHABLE), ("mirror", PURGED)]  # fmt: skip
    assert exit_code(outcomes) == 39
    assert outcomes[1].exit_code == 10 and "no repository" in outcomes[1].error
    for name in ("main", "mirror"):
        repo = open_repo(tmp_path / name)
        try:
            assert len(repo.snapshots()) == 1
            assert not holds_bytes_of(stored_plaintexts(repo), secret)
        finally:
            repo.close()
    audit = outcomes[0].audit(PurgeRequest(["secret.bin"]))
    assert audit["name"] == "main" and audit["status"] == PURGED and audit["verified"] is True
