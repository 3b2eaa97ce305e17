"""Who owns a local snapshot: a small JSON record per snapshot name, written *before* the snapshot.

A run writes ``<dir>/<name>.json`` (its pid, the process start time and the
boot ID) and only then takes the snapshot, so a SIGKILL at any point leaves
either nothing, a record without a snapshot, or a snapshot whose owner is
dead: cleanup removes all three. After the backup the record says ``kept``
and names the repository snapshot. The records are derived state: a snapshot
without one simply has no live owner.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass

from amber.errors import LocalSnapshotError


@dataclass
class OwnerRecord:
    name: str
    job: str
    pid: int
    started: str  # the pid's start time (clock ticks since boot), so a reused pid is not alive
    boot_id: str
    state: str = "running"  # running | kept
    repository_snapshot: str = ""
    repository: str = ""

    def alive(self) -> bool:
        return self.boot_id == _boot_id() and self.started == _start_time(self.pid)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def mine(name: str, job: str) -> OwnerRecord:
    pid = os.getpid()
    return OwnerRecord(name, job, pid, _start_time(pid), _boot_id())


class Owners:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name + ".json")

    def save(self, record: OwnerRecord) -> None:
        path = self._path(record.name)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(asdict(record), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise LocalSnapshotError(
                f"cannot record the owner of {record.name} in {path}: {exc.strerror}"
            ) from exc

    def get(self, name: str) -> OwnerRecord | None:
        try:
            with open(self._path(name), encoding="utf-8") as f:
                return OwnerRecord(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def names(self) -> list[str]:
        try:
            return sorted(n[:-5] for n in os.listdir(self.directory) if n.endswith(".json"))
        except OSError:
            return []

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))
