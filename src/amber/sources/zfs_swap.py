"""ZFS rollback by renaming datasets: a fresh or pre-rollback dataset takes the live one's name and place.

Never run on a real kernel here: tested against a recorded command contract
(tests/ops/test_rollback_zfs_contract.py, tests/sources/test_zfs_swap.py).

``zfs rename`` moves a dataset with its children and snapshots, and a child
whose mountpoint is inherited follows its parent's. The swap unmounts the live
dataset (``mountpoint=none``: children with their own mountpoint first, else
the unmount is busy), renames it aside, renames the replacement (also
unmounted) into its place and mounts it where the live one was, so nothing is
ever mounted inside the live mount point meanwhile. Each step has its reverse,
run last-first when a later step fails, or (all of them) when the swap of a
later dataset of the same rollback fails. The pre-rollback state stays unmounted.

A fresh dataset for ``--from-repo`` is made with the live one's locally set
properties (compression, recordsize, quota, user properties ...) and each
child dataset again, so nested datasets come back as datasets. ``readonly`` and
``canmount`` are set only after the restore (it must write into a mounted
dataset). What cannot be made again is refused before anything is created: a
dataset below that is not a child mounted at its own path below the parent
(``legacy``, ``none``, ``canmount=off``, mounted elsewhere), a volume (zvol),
another dataset mounted inside, and an encryption root (the copy would not be
encrypted with its key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from amber.errors import RollbackRefused
from amber.sources.runner import CommandRunner, Undoable, checked

AFTER_RESTORE = ("readonly", "canmount")
ENCRYPTION = ("encryption", "keylocation", "keyformat", "pbkdf2iters")


@dataclass(frozen=True)
class Child:
    rel: str  # the name below the parent dataset, a/b
    mountpoint: str
    local: bool  # the mountpoint is set on it, not inherited


@dataclass
class Layout:
    """A dataset and everything below it, from ``zfs get -r mountpoint``."""

    dataset: str
    mountpoint: str
    local: bool
    children: list[Child] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # zvols below it (no mountpoint)


def parse_layout(dataset: str, text: str) -> Layout:
    """``zfs get -H -p -r -t filesystem,volume -o name,value,source mountpoint DS`` output, parsed."""
    layout = Layout(dataset, "", False)
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, value, source = parts
        if name == dataset:
            layout.mountpoint, layout.local = value, source == "local"
        elif name.startswith(dataset + "/"):
            if value == "-":
                layout.volumes.append(name)
            else:
                layout.children.append(Child(name[len(dataset) + 1 :], value, source == "local"))
    layout.children.sort(key=lambda c: c.rel.count("/"))
    return layout


def read_layout(run: CommandRunner, dataset: str) -> Layout:
    argv = ["zfs", "get", "-H", "-p", "-r", "-t", "filesystem,volume", "-o", "name,value,source"]
    return parse_layout(dataset, checked(run, [*argv, "mountpoint", dataset]))


def parse_local_properties(text: str) -> dict[str, dict[str, str]]:
    """``zfs get -H -p -r -s local -o name,property,value all DS`` output: dataset -> property -> value."""
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            found.setdefault(parts[0], {})[parts[1]] = parts[2]
    return found


def read_local_properties(run: CommandRunner, dataset: str) -> dict[str, dict[str, str]]:
    argv = ["zfs", "get", "-H", "-p", "-r", "-s", "local", "-o", "name,property,value", "all", dataset]
    return parse_local_properties(checked(run, argv))


@dataclass
class FreshPlan:
    """The commands that make ``<dataset>.<name>`` (and its children) before the restore, and after it."""

    create: list[list[str]] = field(default_factory=list)
    after_restore: list[list[str]] = field(default_factory=list)


def plan_fresh(
    live: Layout, nested: Sequence[tuple[str, str]], props: dict[str, dict[str, str]], fresh: str,
    fresh_mount: str,
) -> FreshPlan:  # fmt: skip
    """Refuse what cannot be made again, else the commands. ``nested``: (dataset, mountpoint) below it."""
    top = live.dataset
    why = _unmakeable(live, nested, props)
    if why:
        raise RollbackRefused(
            f"{why}: rolling {live.mountpoint} back from the repository cannot make it again; "
            "restore those files with amber restore instead"
        )
    plan = FreshPlan()
    for source, target, mountpoint in [(top, fresh, fresh_mount)] + [
        (f"{top}/{c.rel}", f"{fresh}/{c.rel}", "") for c in live.children
    ]:
        own = props.get(source, {})
        options = [f"{k}={v}" for k, v in sorted(own.items()) if k not in ("mountpoint", *AFTER_RESTORE)]
        if mountpoint:
            options.append(f"mountpoint={mountpoint}")
        plan.create.append(["zfs", "create", *[x for o in options for x in ("-o", o)], target])
        plan.after_restore += [["zfs", "set", f"{k}={own[k]}", target] for k in AFTER_RESTORE if k in own]
    plan.after_restore.append(["zfs", "set", "mountpoint=none", fresh])  # unmounted until it is in place
    return plan


def _unmakeable(live: Layout, nested: Sequence[tuple[str, str]], props: dict[str, dict[str, str]]) -> str:
    below = {c.rel: c for c in live.children}
    mounted = dict(nested)
    for child in live.children:
        dataset = f"{live.dataset}/{child.rel}"
        if child.mountpoint != f"{live.mountpoint.rstrip('/')}/{child.rel}" or dataset not in mounted:
            return f"the dataset {dataset} below {live.dataset} is not mounted at its own path below it"
    for dataset, mountpoint in nested:
        if not dataset.startswith(live.dataset + "/") or dataset[len(live.dataset) + 1 :] not in below:
            return f"{mountpoint} is another dataset ({dataset}) mounted inside {live.mountpoint}"
    if live.volumes:
        return f"{live.volumes[0]} is a volume (zvol) below {live.dataset}"
    for dataset, own in sorted(props.items()):
        if any(k in own for k in ENCRYPTION):
            return f"{dataset} is an encryption root (its copy would not be encrypted with its key)"
    return ""


def swap_steps(live: Layout, replacement: Layout, pre: str) -> list[Undoable]:
    """``live`` unmounted and renamed to ``pre``; ``replacement`` (unmounted) takes its name and place.

    ``replacement`` is a fresh dataset (its children as the live ones should end)
    or an earlier pre-rollback state (undo). Nothing is mounted inside the live
    mount point meanwhile: children with their own mountpoint go first.
    """
    top, base = live.dataset, live.mountpoint.rstrip("/")
    if live.local:
        mount_top = ["zfs", "set", f"mountpoint={live.mountpoint}", top]
    else:
        mount_top = ["zfs", "inherit", "mountpoint", top]
    steps: list[Undoable] = []
    for child in reversed([c for c in live.children if c.local]):
        name = f"{top}/{child.rel}"
        steps.append((_set_mountpoint("none", name), _set_mountpoint(child.mountpoint, name)))
    steps += [
        (["zfs", "set", "mountpoint=none", top], mount_top),
        (["zfs", "rename", top, pre], ["zfs", "rename", pre, top]),
        (["zfs", "rename", replacement.dataset, top], ["zfs", "rename", top, replacement.dataset]),
        (mount_top, ["zfs", "set", "mountpoint=none", top]),
    ]
    steps += [
        (_set_mountpoint(f"{base}/{c.rel}", f"{top}/{c.rel}"), _set_mountpoint("none", f"{top}/{c.rel}"))
        for c in replacement.children
        if c.local
    ]
    return steps


def reversal(steps: Sequence[Undoable]) -> list[Undoable]:
    """The commands that take a completed swap back, last step first (when a later dataset's swap fails)."""
    return [(back, None) for _, back in reversed(steps) if back is not None]


def _set_mountpoint(value: str, dataset: str) -> list[str]:
    return ["zfs", "set", f"mountpoint={value}", dataset]
