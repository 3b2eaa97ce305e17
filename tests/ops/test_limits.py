"""Resource controls on a real process: nice, I/O class (read back from the kernel), worker caps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amber.errors import UsageError
from amber.ops import limits
from amber.ops.limits import Limits
from tests.conftest import AmberCli

PROBE = """
import os, sys
from amber.ops import limits
wanted = limits.Limits(nice=int(sys.argv[1]), ionice_class=sys.argv[2], ionice_level=int(sys.argv[3]))
done = limits.apply(wanted)
print(os.getpriority(os.PRIO_PROCESS, 0), *limits.get_io_priority(), ";".join(done))
"""


@pytest.mark.parametrize(("nice", "cls", "level", "expected"), [
    (19, "idle", 0, "19 idle 0 nice 19;ionice idle"),
    (5, "best-effort", 6, "5 best-effort 6 nice 5;ionice best-effort level 6"),
])  # fmt: skip
def test_apply_sets_kernel_priorities(nice: int, cls: str, level: int, expected: str) -> None:
    if limits.get_io_priority() is None:
        pytest.skip("ioprio syscalls unknown on this machine")
    out = subprocess.run([sys.executable, "-c", PROBE, str(nice), cls, str(level)], capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    assert out == expected


def test_children_inherit_priorities() -> None:
    script = ("from amber.ops import limits; limits.apply(limits.Limits(nice=12, ionice_class='idle'));"
              "import subprocess; subprocess.run(['sh', '-c', 'cat /proc/self/stat'])")  # fmt: skip
    stat = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert stat.rsplit(")", 1)[1].split()[16] == "12"  # field 19: nice


WORKERS = [
    (Limits(), None),
    (Limits(threads=3), 3),
    (Limits(threads=8, memory_cap=256 << 20), 3),  # (256 - 96) MiB / 48 MiB
    (Limits(threads=1, memory_cap=8 << 30), 1),
    (Limits(memory_cap=1 << 20), 1),
]


@pytest.mark.parametrize(("lim", "workers"), WORKERS)
def test_workers(lim: Limits, workers: int | None) -> None:
    assert lim.workers == workers


def test_options_override_config() -> None:
    base = Limits(nice=10, ionice_class="idle", threads=2)
    got = limits.with_options(base, nice=15, threads=None, memory_cap="1G")
    assert (got.nice, got.ionice_class, got.threads, got.memory_cap) == (15, "idle", 2, 1 << 30)
    with pytest.raises(UsageError, match="--memory-cap"):
        limits.with_options(base, memory_cap="lots")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may raise priority")
def test_raising_priority_without_privilege_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot set nice -5"):
        limits.set_nice(-5)  # fails without CAP_SYS_NICE, so the test process keeps its priority


def test_backup_cli_applies_limits_to_itself_and_children(tmp_path: Path, cli: AmberCli) -> None:
    if shutil.which("ionice") is None:
        pytest.skip("util-linux ionice not installed")
    probe = "ionice -p $$; cut -d' ' -f19 /proc/self/stat"
    cli.run("backup", "--nice", "17", "--ionice-class", "idle", "--threads", "1", "--stdin-from-command",
            "--stdin-filename", "prio.txt", "--", "sh", "-c", probe)  # fmt: skip
    cli.run("restore", "latest", "--target", str(tmp_path / "out"))
    assert (tmp_path / "out" / "prio.txt").read_text().split() == ["idle", "17"]


def test_backup_cli_rejects_bad_memory_cap(cli: AmberCli, tmp_path: Path) -> None:
    result = cli.run("backup", "--memory-cap", "lots", str(tmp_path), check=False)
    assert result.returncode == 2 and "--memory-cap" in result.stderr
