"""The dashboard, server-side: a year of history for 20 jobs.

Fills a state database with JOBS jobs x DAYS daily runs (each with backup,
copy and check steps), a weekly drill per job and daily usage samples, an
audit log of AUDIT records, and a real repository holding run records of
HOSTS hosts x JOBS jobs, then times the status board (verdicts, forecasts)
and the rendered pages through Starlette's TestClient: overview, job (with
its charts), repository, fleet (uncached: it opens the repository), drills
and audit. The issue's target is <= 100 ms per overview.

    python bench/webbench.py --jobs 20 --days 365 --repeat 20 --hosts 5 --audit 10000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from amber.ops import board
from amber.ops.audit import chain as audit_chain
from amber.ops.audit.log import operation_fields
from amber.ops.config.model import parse_config
from amber.ops.drills.history import DrillHistory
from amber.ops.reports.usage import UsageLog
from amber.ops.state import Destination, StateDB, connect
from amber.repository.run_records import MAX_RUNS, FleetRecord, RunEntry
from amber.services import fleet, session
from amber.web.app import build
from amber.web.security import Guard, allowed_hosts, load_token

DAY = 86400.0


PASSWORD = "bench"


def make_config(root: Path, jobs: int) -> str:
    (root / "pass").write_text(PASSWORD)
    text = [f'[repositories.main]\nurl = "{root / "main"}"\npassword_file = "{root / "pass"}"\n\n'
            f'[repositories.cloud]\nurl = "{root / "cloud"}"\nkind = "cloud"\noffsite = true\n'
            'immutable = true\noffline = true\n']  # fmt: skip
    for i in range(jobs):
        text.append(f'[jobs.job{i:02d}]\npaths = ["/srv/{i}"]\nrepository = "main"\nmirrors = ["cloud"]\n'
                    'schedule = "daily"\n')  # fmt: skip
    text.append(f'[state]\npath = "{root / "state" / "state.db"}"\n')
    path = root / "config.toml"
    path.write_text("\n".join(text))
    return str(path)


def fill(state: str, jobs: int, days: int, now: float) -> None:
    """One transaction, rows as StateDB.add, DrillHistory.add and UsageLog.record write them."""
    StateDB(state), DrillHistory(state), UsageLog(state)  # schemas
    runs, drills = [], []
    for d in range(days, 0, -1):
        day = now - d * DAY
        for i in range(jobs):
            backup = Destination("main", "backup", "success", snapshot_id=f"s{i}-{d}", details={"bytes": 1})
            steps = [backup,
                     Destination("cloud", "copy", "success", snapshot_id=f"c{i}-{d}"),
                     Destination("main", "check", "success", details={"errors": []})]  # fmt: skip
            runs.append((f"job{i:02d}", day, day + 120, "success", 10**7, 1000, json.dumps([f"s{i}-{d}"]),
                         json.dumps([x.__dict__ for x in steps]), "[]", "bench", 1))  # fmt: skip
            if d % 7 == 0:
                drills.append((day, day + 30, "main", f"job{i:02d}", "sample", "success", 20, 10**6))
    with connect(state) as db:
        db.executemany("INSERT INTO runs (job, started, ended, status, bytes_added, files, snapshot_ids,"
                       " destinations, errors, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        db.executemany("INSERT INTO drills (started, ended, repository, job, mode, status, files, bytes)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", drills)
        db.executemany("INSERT OR REPLACE INTO usage_samples (repository, day, taken, used, total)"
                       " VALUES ('main', ?, ?, ?, ?)",
                       [(f"d{d}", now - d * DAY, 10**12 + d * 10**9, 4 * 10**12) for d in range(days)])


def fill_repository(root: Path, hosts: int, jobs: int, now: float) -> None:
    """A real repository with a run record per host and job, as `amber run` leaves them."""
    repo = session.create(str(root / "main"), PASSWORD.encode())
    try:
        runs = [RunEntry(now - d * DAY, now - d * DAY + 120, "success", 10**7, 1000) for d in range(MAX_RUNS)]
        for h in range(hosts):
            for i in range(jobs):
                record = FleetRecord(f"host{h}", f"job{i:02d}", now, DAY, "protected", [], runs)
                fleet.publish(repo, record, now)
    finally:
        repo.close()


def fill_audit(path: str, records: int) -> None:
    """A valid hash chain, written at once (AuditLog.append would fsync every record)."""
    lines, prev = [], None
    for i in range(records):
        prev = audit_chain.chain(prev, operation_fields("job" if i % 3 else "prune", [f"job{i % 20:02d}"], 0))
        lines.append(audit_chain.encode(prev))
    Path(path).write_bytes(b"".join(lines))


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--audit", type=int, default=10000, help="audit log records")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_config(root, args.jobs)
        config = parse_config(Path(source).read_text(), source)
        now = time.time()
        start = time.perf_counter()
        fill(config.state.path, args.jobs, args.days, now)
        fill_repository(root, args.hosts, args.jobs, now)
        fill_audit(config.state.audit_log, args.audit)
        print(f"filled {args.jobs} jobs x {args.days} days, {args.hosts} hosts' run records and "
              f"{args.audit} audit records in {time.perf_counter() - start:.1f} s")
        token = load_token(config.state_dir)
        passwords = session.PasswordSource(password_file=str(root / "pass"))
        app = build(config, Guard(token, allowed_hosts("127.0.0.1", ["testserver"])), passwords)
        with TestClient(app, base_url="http://testserver") as client:
            client.get(f"/login?token={token}")
            for name, fn in (("board", lambda: board.board(config, sample=False)),
                             ("overview page", lambda: client.get("/")),
                             ("status API", lambda: client.get("/api/v1/status")),
                             ("job page", lambda: client.get("/jobs/job00")),
                             ("repository", lambda: client.get("/repos/main")),
                             ("fleet", lambda: client.get("/fleet?refresh=1")),
                             ("drills", lambda: client.get("/drills")),
                             ("audit", lambda: client.get("/audit?q=job07&page=2")),
                             ("monthly report", lambda: client.get("/reports/monthly")),
                             ("WAL", lambda: client.get("/wal?refresh=1"))):  # fmt: skip
                ms = timed(fn, args.repeat)
                print(f"{name:14} median {statistics.median(ms):7.1f} ms  max {max(ms):7.1f} ms")


if __name__ == "__main__":
    main()
