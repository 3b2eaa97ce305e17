"""Which suspicious snapshots were acknowledged, in the state database, for the protection verdict.

`amber anomaly ack` rewrites the snapshot in the repository (a new ID, tag
``anomaly-acked``); the board reads only local state, so the acknowledgement of
the ID a run recorded is kept here too. Derived data: losing it only brings
the reason back until the snapshot is acknowledged again.
"""

from __future__ import annotations

from collections.abc import Iterable

from amber.ops import state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anomaly_acks (
    snapshot TEXT PRIMARY KEY,       -- the suspicious snapshot's ID as the run recorded it
    acked_as TEXT NOT NULL,          -- its ID after the acknowledgement
    acked_at REAL NOT NULL
);
"""


class AckLog:
    def __init__(self, path: str) -> None:
        self.path = path
        state.prepare(path, _SCHEMA)

    def record(self, snapshot: str, acked_as: str, when: float) -> None:
        with state.connect(self.path) as db:
            db.execute("INSERT OR REPLACE INTO anomaly_acks VALUES (?, ?, ?)", (snapshot, acked_as, when))

    def acknowledged(self, snapshots: Iterable[str]) -> set[str]:
        """The subset of ``snapshots`` acknowledged (by their old or their new ID)."""
        wanted = sorted(set(snapshots))
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        with state.connect(self.path) as db:
            rows = db.execute(f"SELECT snapshot, acked_as FROM anomaly_acks WHERE snapshot IN ({marks}) "
                              f"OR acked_as IN ({marks})", (*wanted, *wanted)).fetchall()  # fmt: skip
        return {sid for row in rows for sid in (row["snapshot"], row["acked_as"]) if sid in wanted}
