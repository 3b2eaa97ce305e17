"""`rollback --from-repo` of a ZFS job with nested datasets, against the recorded zfs command contract.

The restore and its checks are real (into the directory where the fresh dataset
would be mounted); the zfs commands are replayed: this never ran on a real kernel.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from amber.errors import IntegrityError, LocalSnapshotError, RollbackRefused
from amber.ops.config.model import Config, parse_config
from amber.ops.localsnap import from_repo as from_repo_module
from amber.ops.localsnap.requests import RollbackRequest, RollbackResult
from amber.ops.localsnap.rollback import rollback
from amber.services import session
from amber.services.backup import BackupRequest, backup_paths
from amber.sources.changes import Changes
from amber.sources.zfs import ZfsProvider
from tests.conftest import PASSWORD
from tests.sources.fake_commands import Contract, Step, fails, ok
from tests.sources.test_zfs_contract import LIST_FS

FRESH = "amber-home-20261203T100000.000Z"
PRE = "amber-home-pre-rollback-20261203T100001.000Z"
LAYOUT = ["zfs", "get", "-H", "-p", "-r", "-t", "filesystem,volume", "-o", "name,value,source", "mountpoint"]
PROPS = ["zfs", "get", "-H", "-p", "-r", "-s", "local", "-o", "name,property,value", "all"]


@pytest.fixture(autouse=True)
def fixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh dataset's and the pre-rollback state's names, which the contract spells out."""
    monkeypatch.setattr(
        from_repo_module, "new_name", lambda _job, pre_rollback=False: PRE if pre_rollback else FRESH
    )


def snaps(dataset: str) -> list[str]:
    return ["zfs", "list", "-H", "-p", "-t", "snapshot", "-d", "1", "-s", "creation",
            "-o", "name,creation,used", dataset]  # fmt: skip


def setup(tmp_path: Path) -> tuple[Config, str, Path]:
    """A backup of home with the datasets proj and proj/deep below it; then home changed."""
    home = tmp_path / "home"
    (home / "proj" / "deep").mkdir(parents=True)
    (home / "kept.txt").write_text("backed up")
    (home / "proj" / "a.txt").write_text("in proj")
    (home / "proj" / "deep" / "b.bin").write_bytes(os.urandom(70_000))
    repo = session.create(str(tmp_path / "repo"), PASSWORD.encode())
    try:
        snapshot_id = backup_paths(repo, BackupRequest(paths=[str(home)])).snapshot_id
    finally:
        repo.close()
    (home / "kept.txt").write_text("changed since")
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
password_file = "{tmp_path / "pass"}"
[jobs.home]
paths = ["{home}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    return cfg, snapshot_id, home


def listing(home: Path, extra: str = "") -> list[Step]:
    """volume_of, volumes_below, then each planned dataset's snapshots and the datasets beside it."""
    datasets = (f"tank\t/tank\ton\ntank/home\t{home}\ton\ntank/home/proj\t{home}/proj\ton\n"
                f"tank/home/proj/deep\t{home}/proj/deep\ton\n{extra}")  # fmt: skip
    steps: list[Step] = [(LIST_FS, ok(datasets)), (LIST_FS, ok(datasets))]
    for ds in ("tank/home", "tank/home/proj", "tank/home/proj/deep"):
        steps += [(snaps(ds), ok()), (LIST_FS, ok(datasets))]
    return steps


def layout(home: Path) -> str:
    return (f"tank/home\t{home}\tlocal\ntank/home/proj\t{home}/proj\tinherited from tank/home\n"
            f"tank/home/proj/deep\t{home}/proj/deep\tlocal\n")  # fmt: skip


PROPERTIES = "tank/home\tcompression\tlz4\ntank/home\tcom.example:tag\tx\ntank/home/proj/deep\treadonly\ton\n"


def roll(cfg: Config, contract: Contract, req: RollbackRequest) -> RollbackResult:
    return rollback(cfg, req, session.PasswordSource(), providers=lambda: {"zfs": ZfsProvider(contract)})


def test_nested_datasets_come_back_as_datasets_with_their_properties(tmp_path: Path) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    (home / "new.txt").write_text("made since")  # the rollback removes it
    (home / "proj" / "a.txt").unlink()  # and adds it back; kept.txt was modified since
    fresh = home / ".amber-snapshots" / FRESH / quote(str(home), safe="")
    reads = [
        ([*LAYOUT, "tank/home"], ok(layout(home))),
        ([*PROPS, "tank/home"], ok(PROPERTIES + f"tank/home/proj/deep\tmountpoint\t{home}/proj/deep\n")),
    ]
    dry = Contract([*listing(home), *reads])
    planned = roll(cfg, dry, RollbackRequest("home", from_repo=snapshot_id[:8], dry_run=True))
    assert dry.finished() and planned.changes == Changes(1, 1, 1)  # live against the repository's tree
    contract = Contract([
        *listing(home),
        *reads,
        (["zfs", "create", "-o", "com.example:tag=x", "-o", "compression=lz4", "-o", f"mountpoint={fresh}",
          f"tank/home.{FRESH}"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj/deep"], ok()),  # inherits: mounted inside the fresh one
        (["zfs", "set", "readonly=on", f"tank/home.{FRESH}/proj/deep"], ok()),  # after the restore wrote it
        (["zfs", "set", "mountpoint=none", f"tank/home.{FRESH}"], ok()),  # unmounted until in place
        (["zfs", "set", "mountpoint=none", "tank/home/proj/deep"], ok()),  # its own mountpoint: first
        (["zfs", "set", "mountpoint=none", "tank/home"], ok()),
        (["zfs", "rename", "tank/home", f"tank/home.{PRE}"], ok()),
        (["zfs", "rename", f"tank/home.{FRESH}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}/proj/deep", "tank/home/proj/deep"], ok()),
    ])  # fmt: skip
    done = roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert done.done and contract.finished() and done.kept_as == f"tank/home.{PRE}"
    assert done.changes == Changes(1, 1, 1)  # live against the restored tree; not the fresh mount inside it
    assert (fresh / "kept.txt").read_text() == "backed up"  # what the fresh datasets held before the renames
    assert (fresh / "proj" / "a.txt").read_text() == "in proj"
    assert (fresh / "proj" / "deep" / "b.bin").stat().st_size == 70_000


@pytest.mark.parametrize(
    ("extra", "props", "why"),
    [
        ("tank/home/proj/off\tlegacy\ton\n", "", "tank/home/proj/off below tank/home is not mounted at"),
        ("tank/home/vol\t-\t-\n", "", "tank/home/vol is a volume"),
        ("", "tank/home\tkeylocation\tprompt\n", "tank/home is an encryption root"),
    ],
)
def test_what_cannot_be_made_again_is_refused_before_anything_is_created(
    tmp_path: Path, extra: str, props: str, why: str
) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    contract = Contract([
        *listing(home),
        ([*LAYOUT, "tank/home"], ok(layout(home) + extra)),
        ([*PROPS, "tank/home"], ok(props)),
    ])  # fmt: skip
    with pytest.raises(RollbackRefused, match=why) as raised:
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert raised.value.exit_code == 33 and contract.finished()


def test_another_dataset_mounted_inside_is_refused(tmp_path: Path) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    (home / "other").mkdir()
    other = f"tank/other\t{home}/other\ton\n"
    steps = listing(home, other)  # the datasets are listed in the order of their mount points
    steps[4:4] = [(snaps("tank/other"), ok()), steps[3]]
    contract = Contract([
        *steps,
        ([*LAYOUT, "tank/home"], ok(layout(home))),
        ([*PROPS, "tank/home"], ok()),
    ])  # fmt: skip
    with pytest.raises(RollbackRefused, match=r"other is another dataset \(tank/other\) mounted inside"):
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert contract.finished()


def test_a_failed_restore_destroys_the_fresh_dataset_and_touches_nothing_live(tmp_path: Path) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    fresh = home / ".amber-snapshots" / FRESH / quote(str(home), safe="")

    reads = [([*LAYOUT, "tank/home"], ok(layout(home))), ([*PROPS, "tank/home"], ok())]
    dry = Contract([*listing(home), *reads])
    planned = roll(cfg, dry, RollbackRequest("home", from_repo=snapshot_id[:8], dry_run=True))
    assert planned.steps[0] == f"zfs create -o mountpoint={fresh} tank/home.{FRESH}" and dry.finished()
    contract = Contract([
        *listing(home),
        *reads,
        (["zfs", "create", "-o", f"mountpoint={fresh}", f"tank/home.{FRESH}"], ok(),
         lambda: damage_largest_pack(tmp_path / "repo")),
        (["zfs", "create", f"tank/home.{FRESH}/proj"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj/deep"], ok()),
        (["zfs", "destroy", "-r", f"tank/home.{FRESH}"], ok()),
    ])  # fmt: skip
    with pytest.raises(IntegrityError, match="could not be restored intact") as raised:
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert raised.value.exit_code == 14
    assert contract.finished() and (home / "kept.txt").read_text() == "changed since"


def damage_largest_pack(repo: Path) -> None:
    """One byte flipped in the middle of the biggest pack: the 70 kB file's data."""
    pack = max((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with open(pack, "r+b") as f:
        f.seek(pack.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x5A]))


def test_a_failing_swap_step_is_undone_in_reverse_and_the_fresh_dataset_destroyed(tmp_path: Path) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    fresh = home / ".amber-snapshots" / FRESH / quote(str(home), safe="")
    inherited = layout(home).replace("deep\tlocal", "deep\tinherited from tank/home")  # no child first
    contract = Contract([
        *listing(home),
        ([*LAYOUT, "tank/home"], ok(inherited)),
        ([*PROPS, "tank/home"], ok()),
        (["zfs", "create", "-o", f"mountpoint={fresh}", f"tank/home.{FRESH}"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj/deep"], ok()),
        (["zfs", "set", "mountpoint=none", f"tank/home.{FRESH}"], ok()),
        (["zfs", "set", "mountpoint=none", "tank/home"], ok()),
        (["zfs", "rename", "tank/home", f"tank/home.{PRE}"], ok()),
        (["zfs", "rename", f"tank/home.{FRESH}", "tank/home"], fails(1, "cannot rename: exists")),
        (["zfs", "rename", f"tank/home.{PRE}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}", "tank/home"], ok()),
        (["zfs", "destroy", "-r", f"tank/home.{FRESH}"], ok()),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match="cannot rename: exists; tank/home was not changed") as e:
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert e.value.exit_code == 32 and contract.finished()


def test_a_busy_live_dataset_is_left_as_it_was(tmp_path: Path) -> None:
    cfg, snapshot_id, home = setup(tmp_path)
    fresh = home / ".amber-snapshots" / FRESH / quote(str(home), safe="")
    contract = Contract([
        *listing(home),
        ([*LAYOUT, "tank/home"], ok(layout(home))),
        ([*PROPS, "tank/home"], ok()),
        (["zfs", "create", "-o", f"mountpoint={fresh}", f"tank/home.{FRESH}"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj/deep"], ok()),
        (["zfs", "set", "mountpoint=none", f"tank/home.{FRESH}"], ok()),
        (["zfs", "set", "mountpoint=none", "tank/home/proj/deep"], fails(1, "cannot unmount: busy")),
        (["zfs", "destroy", "-r", f"tank/home.{FRESH}"], ok()),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError, match="cannot unmount: busy; tank/home was not changed"):
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert contract.finished()


def test_when_the_second_datasets_swap_fails_the_first_is_put_back_and_nothing_fresh_is_left(
    tmp_path: Path,
) -> None:
    """Two datasets with one below each (home/proj with its own mountpoint, srv/www inherited)."""
    home, srv = tmp_path / "home", tmp_path / "srv"
    for top, child in ((home, "proj"), (srv, "www")):
        (top / child).mkdir(parents=True)
        (top / child / "f.txt").write_text(f"in {top.name}/{child}")
    repo = session.create(str(tmp_path / "repo"), PASSWORD.encode())
    try:
        snapshot_id = backup_paths(repo, BackupRequest(paths=[str(home), str(srv)])).snapshot_id
    finally:
        repo.close()
    (home / "proj" / "f.txt").write_text("changed since")
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    cfg = parse_config(f"""
[repositories.main]
url = "{tmp_path / "repo"}"
password_file = "{tmp_path / "pass"}"
[jobs.home]
paths = ["{home}", "{srv}"]
snapshot = "zfs"
[state]
path = "{tmp_path / "state.db"}"
""")
    datasets = (f"tank\t/tank\ton\ntank/home\t{home}\ton\ntank/home/proj\t{home}/proj\ton\n"
                f"tank/srv\t{srv}\ton\ntank/srv/www\t{srv}/www\ton\n")  # fmt: skip
    listed: list[Step] = [(LIST_FS, ok(datasets))] * 4  # volume_of and volumes_below of each path
    for ds in ("tank/home", "tank/home/proj", "tank/srv", "tank/srv/www"):
        listed += [(snaps(ds), ok()), (LIST_FS, ok(datasets))]
    fresh_home = home / ".amber-snapshots" / FRESH / quote(str(home), safe="")
    fresh_srv = srv / ".amber-snapshots" / FRESH / quote(str(srv), safe="")
    contract = Contract([
        *listed,
        ([*LAYOUT, "tank/home"], ok(f"tank/home\t{home}\tlocal\ntank/home/proj\t{home}/proj\tlocal\n")),
        ([*PROPS, "tank/home"], ok()),
        ([*LAYOUT, "tank/srv"], ok(f"tank/srv\t{srv}\tinherited from tank\n"
                                   f"tank/srv/www\t{srv}/www\tinherited from tank/srv\n")),
        ([*PROPS, "tank/srv"], ok()),
        (["zfs", "create", "-o", f"mountpoint={fresh_home}", f"tank/home.{FRESH}"], ok()),
        (["zfs", "create", f"tank/home.{FRESH}/proj"], ok()),
        (["zfs", "set", "mountpoint=none", f"tank/home.{FRESH}"], ok()),
        (["zfs", "create", "-o", f"mountpoint={fresh_srv}", f"tank/srv.{FRESH}"], ok()),
        (["zfs", "create", f"tank/srv.{FRESH}/www"], ok()),
        (["zfs", "set", "mountpoint=none", f"tank/srv.{FRESH}"], ok()),
        # home is swapped in
        (["zfs", "set", "mountpoint=none", "tank/home/proj"], ok()),
        (["zfs", "set", "mountpoint=none", "tank/home"], ok()),
        (["zfs", "rename", "tank/home", f"tank/home.{PRE}"], ok()),
        (["zfs", "rename", f"tank/home.{FRESH}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}/proj", "tank/home/proj"], ok()),
        # srv's swap fails and is undone
        (["zfs", "set", "mountpoint=none", "tank/srv"], ok()),
        (["zfs", "rename", "tank/srv", f"tank/srv.{PRE}"], ok()),
        (["zfs", "rename", f"tank/srv.{FRESH}", "tank/srv"], fails(1, "cannot rename: dataset is busy")),
        (["zfs", "rename", f"tank/srv.{PRE}", "tank/srv"], ok()),
        (["zfs", "inherit", "mountpoint", "tank/srv"], ok()),
        # home's swap is taken back, last step first: the restored tree unmounted, the old one in place
        (["zfs", "set", "mountpoint=none", "tank/home/proj"], ok()),
        (["zfs", "set", "mountpoint=none", "tank/home"], ok()),
        (["zfs", "rename", "tank/home", f"tank/home.{FRESH}"], ok()),
        (["zfs", "rename", f"tank/home.{PRE}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}", "tank/home"], ok()),
        (["zfs", "set", f"mountpoint={home}/proj", "tank/home/proj"], ok()),
        # and neither fresh dataset is left
        (["zfs", "destroy", "-r", f"tank/home.{FRESH}"], ok()),
        (["zfs", "destroy", "-r", f"tank/srv.{FRESH}"], ok()),
    ])  # fmt: skip
    with pytest.raises(LocalSnapshotError) as raised:
        roll(cfg, contract, RollbackRequest("home", from_repo=snapshot_id[:8], yes=True))
    assert str(raised.value.message).endswith(
        f"cannot rename: dataset is busy; tank/srv was not changed; {home} put back as before"
    )
    assert raised.value.exit_code == 32 and contract.finished()
    assert (home / "proj" / "f.txt").read_text() == "changed since"
