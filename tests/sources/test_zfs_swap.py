"""ZFS rollback by renames, the pure half: zfs get output parsed, what can be made again, the swap."""

from __future__ import annotations

import pytest

from amber.errors import RollbackRefused
from amber.sources.zfs_swap import (
    Child,
    Layout,
    parse_layout,
    parse_local_properties,
    plan_fresh,
    swap_steps,
)

HOME = (
    "tank/home\t/home\tinherited from tank\n"
    "tank/home/a\t/home/a\tinherited from tank/home\n"
    "tank/home/a/b\t/home/a/b\tlocal\n"
    "tank/homes\t/homes\tlocal\n"  # a sibling whose name starts the same: not below
)


def test_layout_lists_children_parents_first_and_not_siblings() -> None:
    layout = parse_layout("tank/home", HOME)
    assert (layout.mountpoint, layout.local) == ("/home", False)
    assert layout.children == [Child("a", "/home/a", False), Child("a/b", "/home/a/b", True)]
    assert layout.volumes == []


def test_local_properties_by_dataset() -> None:
    text = "tank/home\tcompression\tlz4\ntank/home/a\tquota\t1073741824\nbroken line\n"
    assert parse_local_properties(text) == {
        "tank/home": {"compression": "lz4"},
        "tank/home/a": {"quota": "1073741824"},
    }


NESTED = [("tank/home/a", "/home/a"), ("tank/home/a/b", "/home/a/b")]


@pytest.mark.parametrize(
    ("layout", "nested", "props", "refusal"),
    [
        (HOME, NESTED, {}, ""),
        (HOME + "tank/home/c\tlegacy\tlocal\n", NESTED, {}, "tank/home/c below tank/home is not mounted at"),
        (HOME + "tank/home/c\t/srv/c\tlocal\n", NESTED, {}, "tank/home/c below tank/home is not mounted at"),
        (HOME, NESTED[:1], {}, "tank/home/a/b below tank/home is not mounted at"),  # canmount=off: not listed
        (HOME, [*NESTED, ("tank/x", "/home/x")], {}, r"/home/x is another dataset \(tank/x\)"),
        (HOME + "tank/home/zvol\t-\t-\n", NESTED, {}, "tank/home/zvol is a volume"),
        (HOME, NESTED, {"tank/home/a": {"keyformat": "passphrase"}}, "tank/home/a is an encryption root"),
    ],
)
def test_what_cannot_be_made_again(
    layout: str, nested: list[tuple[str, str]], props: dict[str, dict[str, str]], refusal: str
) -> None:
    live = parse_layout("tank/home", layout)
    if not refusal:
        plan_fresh(live, nested, props, "tank/home.fresh", "/snaps/fresh")
        return
    with pytest.raises(RollbackRefused, match=refusal):
        plan_fresh(live, nested, props, "tank/home.fresh", "/snaps/fresh")


def test_fresh_datasets_copy_local_properties_and_set_readonly_and_canmount_after_the_restore() -> None:
    props = {"tank/home": {"compression": "zstd", "canmount": "noauto", "mountpoint": "/home"},
             "tank/home/a": {"readonly": "on", "recordsize": "1048576"}}  # fmt: skip
    plan = plan_fresh(parse_layout("tank/home", HOME), NESTED, props, "tank/home.f", "/snaps/f")
    assert plan.create == [
        ["zfs", "create", "-o", "compression=zstd", "-o", "mountpoint=/snaps/f", "tank/home.f"],
        ["zfs", "create", "-o", "recordsize=1048576", "tank/home.f/a"],
        ["zfs", "create", "tank/home.f/a/b"],
    ]
    assert plan.after_restore == [
        ["zfs", "set", "canmount=noauto", "tank/home.f"],
        ["zfs", "set", "readonly=on", "tank/home.f/a"],
        ["zfs", "set", "mountpoint=none", "tank/home.f"],
    ]


SET = ["zfs", "set"]


def test_swap_unmounts_children_with_their_own_mountpoint_first_and_mounts_them_last() -> None:
    live = parse_layout("tank/home", HOME)
    fresh = Layout("tank/home.f", "none", True, [Child("a", "", False), Child("a/b", "", True)])
    assert swap_steps(live, fresh, "tank/home.pre") == [
        (["zfs", "set", "mountpoint=none", "tank/home/a/b"], [*SET, "mountpoint=/home/a/b", "tank/home/a/b"]),
        (["zfs", "set", "mountpoint=none", "tank/home"], ["zfs", "inherit", "mountpoint", "tank/home"]),
        (["zfs", "rename", "tank/home", "tank/home.pre"], ["zfs", "rename", "tank/home.pre", "tank/home"]),
        (["zfs", "rename", "tank/home.f", "tank/home"], ["zfs", "rename", "tank/home", "tank/home.f"]),
        (["zfs", "inherit", "mountpoint", "tank/home"], ["zfs", "set", "mountpoint=none", "tank/home"]),
        (["zfs", "set", "mountpoint=/home/a/b", "tank/home/a/b"], [*SET, "mountpoint=none", "tank/home/a/b"]),
    ]
