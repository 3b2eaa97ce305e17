"""`amber pg wal-push` per-segment latency and throughput, against `pgbackrest archive-push`,
each synchronous and asynchronous (amber `--async`, pgBackRest `archive-async=y`).

PostgreSQL runs archive_command once per WAL segment, one after another, so what
matters is the wall-clock time of one call (process start, key, chunk, compress,
encrypt, durable write). The bench makes real segments: a private PostgreSQL writes
rows and switches WAL, archiving with `cp` into a spool; then each tool archives the
same segments, one process per segment, as PostgreSQL would call it.

Synchronous: the calls alternate between the tools, so both meet the same load.
Asynchronous: a backlog (every segment marked `.ready` in a data directory's
`pg_wal/archive_status`, as after an outage or a burst of writes), then one call per
segment in order, each `.ready` renamed `.done` on success as PostgreSQL does: the
segments/s a tool keeps up with, and the latency of each call.

    python bench/walbench.py                  # 24 segments of 16 MiB
    python bench/walbench.py --segments 60 --workdir /var/tmp/walbench

Run as root: the server runs as `postgres`. pgBackRest is measured when installed
(`apt-get install pgbackrest`), with zstd compression and AES-256 encryption like amber.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

AS_POSTGRES = (
    ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def make_segments(work: Path, count: int) -> tuple[Path, Path]:
    """A cluster (for its pg_control) and ``count`` real archived segments in a spool."""
    pgbin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    data, spool = work / "data", work / "spool"
    spool.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
        shutil.chown(spool, "postgres", "postgres")
    run([*AS_POSTGRES, str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"], cwd="/")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"\narchive_mode = on\narchive_command = 'cp %p {spool}/%f'\n")
    opts = f"-p 5499 -k {work} -c listen_addresses=''"
    run(
        [
            *AS_POSTGRES,
            str(pgbin / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(work / "log"),
            "-o",
            opts,
            "start",
        ],
        cwd="/",
    )
    psql = [str(pgbin / "psql"), "-X", "-q", "-h", str(work), "-p", "5499", "-U", "postgres", "-c"]
    try:
        run([*psql, "CREATE TABLE t (n int, pad text)"])
        while len([p for p in spool.iterdir() if len(p.name) == 24]) < count:
            # ~16 MiB of WAL per round: rows of mixed text (like an application's), then a switch
            run(
                [
                    *psql,
                    "INSERT INTO t SELECT g, md5(g::text) || repeat(md5(random()::text), 3) "
                    "FROM generate_series(1, 60000) g; SELECT pg_switch_wal()",
                ]
            )
            time.sleep(0.2)
    finally:
        run([*AS_POSTGRES, str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], cwd="/")
    return data, spool


def segments(spool: Path, count: int) -> list[Path]:
    return sorted(p for p in spool.iterdir() if len(p.name) == 24)[:count]


Command = tuple[list[str], dict[str, str]]


def timed(command: Command) -> tuple[float, float]:
    """(wall-clock, CPU user+sys) seconds of one run: load on a shared machine inflates CPU time least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command[0], check=True, env=command[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def setup_amber(work: Path, batch: bool = False) -> tuple[Callable[[Path], Command], Path]:
    repo = work / ("amber-async-repo" if batch else "amber-repo")
    password = work / "amber-password"
    password.write_text("bench password\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # installed: byte-compiled
    env = {
        **env,
        "AMBER_REPOSITORY": str(repo),
        "AMBER_PASSWORD_FILE": str(password),
        "XDG_CACHE_HOME": str(work / "cache"),
        "XDG_STATE_HOME": str(work / "state"),
    }
    amber = [sys.executable, "-m", "amber"]  # as archive_command runs it: the lean start (cli/walfast.py)
    subprocess.run([*amber, "init"], check=True, env=env, capture_output=True)
    flags = ["--async"] if batch else []
    return lambda seg: ([*amber, "pg", "wal-push", *flags, str(seg)], env), repo


def setup_pgbackrest(work: Path, data: Path, batch: bool = False) -> Callable[[Path], Command] | None:
    exe = shutil.which("pgbackrest")
    if exe is None:
        print("pgbackrest not installed: skipped")
        return None
    name = "pgbackrest-async" if batch else "pgbackrest"
    conf = work / f"{name}.conf"
    repo = work / f"{name}-repo"
    extra = "archive-async=y\n" if batch else ""
    conf.write_text(f"""[global]
{extra}repo1-path={repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-cipher-pass-0123456789
compress-type=zst
log-level-console=warn
log-level-file=off
lock-path={work}/{name}-lock
spool-path={work}/{name}-spool

[bench]
pg1-path={data}
""")
    base = [exe, f"--config={conf}", "--stanza=bench"]
    if os.geteuid() == 0:
        for path in (work, data, conf, *data.rglob("*")):
            shutil.chown(path, "postgres", "postgres")
        base = [*AS_POSTGRES, *base]
    run([*base, "--no-online", "stanza-create"], cwd="/")
    return lambda seg: ([*base, "archive-push", str(seg)], dict(os.environ))


def backlog(work: Path, data: Path, segs: list[Path]) -> list[Path]:
    """A copy of the data directory's control files with ``segs`` in ``pg_wal``, all ``.ready``."""
    fake = work
    (fake / "global").mkdir(parents=True)  # pgBackRest reads the system identifier from pg1-path
    shutil.copy(data / "global" / "pg_control", fake / "global")
    shutil.copy(data / "PG_VERSION", fake)
    status = fake / "pg_wal" / "archive_status"
    status.mkdir(parents=True)
    out = []
    for seg in segs:
        shutil.copy(seg, fake / "pg_wal")
        (status / f"{seg.name}.ready").touch()
        out.append(fake / "pg_wal" / seg.name)
    if os.geteuid() == 0:
        for path in (fake, *fake.rglob("*")):
            shutil.chown(path, "postgres", "postgres")
    return out


def drain(push: Callable[[Path], Command], wal: list[Path]) -> tuple[list[tuple[float, float]], float]:
    """Call ``push`` for each segment in order as PostgreSQL does; per-call times and the total."""
    times = []
    t0 = time.perf_counter()
    for seg in wal:
        times.append(timed(push(seg)))
        ready = seg.parent / "archive_status" / f"{seg.name}.ready"
        ready.rename(ready.with_suffix(".done"))
    return times, time.perf_counter() - t0


Row = tuple[str, float, float, float, float, float]


def summary(name: str, times: list[tuple[float, float]], total: float | None = None) -> Row:
    walls = sorted(t[0] for t in times)
    med = statistics.median(walls)
    p90 = walls[int(len(walls) * 0.9) - 1] if len(walls) >= 10 else walls[-1]
    cpu = sum(t[1] for t in times) / len(times)
    rate = len(walls) / (total if total is not None else sum(walls))
    print(f"{name}: {len(walls)} segments, median {med * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
          f"max {walls[-1] * 1000:.0f} ms, CPU {cpu * 1000:.0f} ms/segment, {rate:.2f}/s")  # fmt: skip
    return name, med, p90, walls[-1], cpu, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--segments", type=int, default=24)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="walbench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    try:
        data, spool = make_segments(work / "pg", args.segments)
        segs = segments(spool, args.segments)
        amber, amber_repo = setup_amber(work)
        pgbackrest = setup_pgbackrest(work / "pg", data)
        first = timed(amber(segs[0]))[0]  # argon2 once, then the key cache
        if pgbackrest is not None:
            timed(pgbackrest(segs[0]))
        print(f"amber: first push (password KDF, cache written) {first:.3f} s")
        # interleaved, so that both meet the same load on a shared machine
        times: dict[str, list[tuple[float, float]]] = {"amber pg wal-push": [], "pgbackrest archive-push": [],
                                         "python -c pass (interpreter start)": []}  # fmt: skip
        for seg in segs[1:]:
            times["amber pg wal-push"].append(timed(amber(seg)))
            if pgbackrest is not None:
                times["pgbackrest archive-push"].append(timed(pgbackrest(seg)))
            times["python -c pass (interpreter start)"].append(timed(([sys.executable, "-c", "pass"], {})))
        size = sum(f.stat().st_size for f in amber_repo.rglob("*") if f.is_file())
        print(f"amber: repository {size / 2**20:.1f} MiB for {len(segs) * 16} MiB of WAL")
        rows = [summary(name, t) for name, t in times.items() if t]
        # asynchronous: the same segments as a backlog, drained one call at a time
        amber_async, _ = setup_amber(work, batch=True)
        timed(amber_async(segs[0]))  # the key cache for this repository
        runs = [("amber pg wal-push --async", amber_async, backlog(work / "async-amber", data, segs[1:]))]
        if pgbackrest is not None:
            pgbr_data = work / "pg" / "async-pgbackrest"
            wal = backlog(pgbr_data, data, segs[1:])
            pgbr_async = setup_pgbackrest(work / "pg", pgbr_data, batch=True)
            if pgbr_async is not None:  # its async worker is a daemon: its CPU is not counted
                runs.append(("pgbackrest archive-push, archive-async=y", pgbr_async, wal))
        for name, push, wal in runs:
            calls, total = drain(push, wal)
            rows.append(summary(name, calls, total))
        print("\n| per call | median wall ms | p90 wall ms | max wall ms | CPU ms per segment | segments/s |")
        print("|---|---|---|---|---|---|")
        for name, med, p90, most, cpu, rate in rows:
            print(f"| {name} | {med * 1000:.0f} | {p90 * 1000:.0f} | {most * 1000:.0f} | {cpu * 1000:.0f} "
                  f"| {rate:.2f} |")  # fmt: skip
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
