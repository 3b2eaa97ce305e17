"""Database dump + backup: `amber run` of a database job vs `pg_dump | restic backup --stdin` (issue 15).

A private PostgreSQL cluster (unix socket only) is filled to about 1 GiB:
``pgbench -i`` at scale 40 and 400 MB of random text rows (pgbench's own rows
compress to almost nothing, which would flatter every tool). Then, for each
tool, twice (the second time after some pgbench transactions, to show what the
second dump adds):

* amber: ``amber run dbs`` of a job with ``[[jobs.dbs.databases]] type = "postgresql"``
  (``pg_dump --format=custom`` streamed into the repository, no temporary file);
* restic: ``pg_dump --format=custom | restic backup --stdin``;
* baseline: ``pg_dump --format=custom > file`` (no backup at all).

Each pass is timed (wall clock; CPU of the whole process tree), the repository
measured, and the load on the live service measured as the TPS of a
``pgbench`` client running during the pass, against its TPS alone.

    python bench/dumpbench.py                      # ~1 GiB in /var/tmp/amber-dumpbench
    python bench/dumpbench.py --scale 2 --random-mb 20 --skip restic   # quick look

Must run as root (the cluster runs as ``postgres``). Prints a Markdown table and
writes ``results.json`` in the work directory.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

PASSWORD = "dumpbench-password"
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def amber_cmd() -> list[str]:
    local = Path(sys.executable).with_name("amber")
    if local.exists() and "PYTHONPATH" not in os.environ:
        return [str(local)]
    return [sys.executable, "-m", "amber"]  # PYTHONPATH: the checkout's code, not the installed one


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Cluster:
    def __init__(self, work: Path, port: int = 55432) -> None:
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.base = work / "pg"
        self.port = port

    def conn(self) -> list[str]:
        return ["-h", str(self.base), "-p", str(self.port), "-U", "postgres"]

    def start(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        shutil.chown(self.base, "postgres", "postgres")
        os.chmod(self.base, 0o755)
        run([*AS_POSTGRES, str(self.bin / "initdb"), "-D", str(self.base / "data"), "-U", "postgres",
             "--auth=trust", "-E", "UTF8"])  # fmt: skip
        opts = f"-p {self.port} -k {self.base} -c listen_addresses='' -c shared_buffers=128MB"
        run([*AS_POSTGRES, str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-w", "-l",
             str(self.base / "log"), "-o", opts, "start"])  # fmt: skip

    def stop(self) -> None:
        subprocess.run([*AS_POSTGRES, str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-w", "-m",
                        "fast", "stop"], capture_output=True, check=False, cwd="/")  # fmt: skip

    def fill(self, scale: int, random_mb: int) -> int:
        """pgbench's tables (their filler compresses to nothing) and rows of random hex text."""
        run([str(self.bin / "createdb"), *self.conn(), "shop"])
        run([str(self.bin / "pgbench"), *self.conn(), "-i", "-s", str(scale), "-q", "shop"])
        rows = random_mb * 1_000_000 // 100  # about 100 bytes a row on disk
        self.sql("CREATE TABLE docs AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS body "
                 f"FROM generate_series(1, {rows}) g")  # fmt: skip
        return int(self.sql("SELECT pg_database_size('shop')"))

    def sql(self, text: str) -> str:
        return run([str(self.bin / "psql"), *self.conn(), "-X", "-A", "-t", "-d", "shop", "-c", text]).strip()

    def churn(self, transactions: int) -> None:
        run([str(self.bin / "pgbench"), *self.conn(), "-n", "-c", "1", "-t", str(transactions), "shop"])


def run(argv: list[str], env: dict[str, str] | None = None, shell: bool = False) -> str:
    done = subprocess.run(argv if not shell else " ".join(argv), shell=shell, capture_output=True, text=True,
                          env=env, cwd="/", check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {argv}\n{done.stderr[-2000:]}")
    return done.stdout


class Load:
    """A pgbench client running while a pass runs; its TPS per second of progress."""

    def __init__(self, cluster: Cluster) -> None:
        argv = [str(cluster.bin / "pgbench"), *cluster.conn(), "-n", "-c", "1", "-T", "3600", "-P", "1",
                "shop"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = re.match(r"progress: [\d.]+ s, ([\d.]+) tps", line)
            if m:
                self.samples.append((time.monotonic(), float(m.group(1))))

    def tps_between(self, start: float, end: float) -> float:
        inside = [tps for t, tps in self.samples if start < t <= end + 0.5]
        return sum(inside) / len(inside) if inside else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def timed(argv: list[str], env: dict[str, str], shell: bool = False) -> tuple[float, float]:
    """Wall seconds and user+sys CPU seconds of the whole process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    run(argv, env, shell)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def amber_setup(work: Path, cluster: Cluster) -> tuple[list[str], dict[str, str], Path]:
    repo = work / "repo-amber"
    shutil.rmtree(repo, ignore_errors=True)
    env = {**os.environ, "AMBER_PASSWORD": PASSWORD, "XDG_CACHE_HOME": str(work / "cache"),
           "XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}  # fmt: skip
    run([*amber_cmd(), "-r", str(repo), "init"], env)
    (work / "pass").write_text(PASSWORD + "\n")
    cfg = work / "amber.toml"
    cfg.write_text(f"""
[repositories.main]
url = "{repo}"
password_file = "{work / "pass"}"

[jobs.dbs]
[[jobs.dbs.databases]]
type = "postgresql"
name = "shop"
host = "{cluster.base}"
port = {cluster.port}
user = "postgres"
""")
    return [*amber_cmd(), "--config", str(cfg), "run", "dbs", "--no-check"], env, repo


def restic_setup(work: Path, cluster: Cluster) -> tuple[list[str], dict[str, str], Path]:
    repo = work / "repo-restic"
    shutil.rmtree(repo, ignore_errors=True)
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache" / "restic")}
    run(["restic", "-r", str(repo), "init"], env)
    dump = [str(cluster.bin / "pg_dump"), *cluster.conn(), "--format=custom", "--dbname=shop"]
    return [*dump, "|", "restic", "-r", str(repo), "backup", "--stdin", "--stdin-filename", "shop.pgdump",
            "-q"], env, repo  # fmt: skip


def baseline_setup(work: Path, cluster: Cluster) -> tuple[list[str], dict[str, str], Path]:
    out = work / "plain-dump"
    out.mkdir(exist_ok=True)
    dump = [str(cluster.bin / "pg_dump"), *cluster.conn(), "--format=custom", "--dbname=shop"]
    return [*dump, ">", str(out / "shop.pgdump"), "&&", "sync"], dict(os.environ), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=40, help="pgbench scale (each is about 15 MiB)")
    ap.add_argument("--random-mb", type=int, default=400, help="MB of random text rows beside pgbench's")
    ap.add_argument("--workdir", default="/var/tmp/amber-dumpbench")
    ap.add_argument("--skip", default="", help="comma-separated: amber, restic, pg_dump")
    ap.add_argument("--churn", type=int, default=2000, help="pgbench transactions between the two passes")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(work)
    cluster.start()
    results: dict[str, object] = {"scale": args.scale, "random_mb": args.random_mb,
                                  "load_1min": os.getloadavg()[0]}  # fmt: skip
    try:
        results["db_bytes"] = cluster.fill(args.scale, args.random_mb)
        load = Load(cluster)
        try:
            time.sleep(12)
            results["tps_alone"] = load.tps_between(time.monotonic() - 10, time.monotonic())
            setups = {"amber": amber_setup, "restic": restic_setup, "pg_dump": baseline_setup}
            skip = set(filter(None, args.skip.split(",")))
            for name, setup in setups.items():
                if name in skip:
                    continue
                argv, env, store = setup(work, cluster)
                passes = []
                for n in (1, 2):
                    if n == 2:
                        cluster.churn(args.churn)
                    before = dir_size(store)
                    start = time.monotonic()
                    wall, cpu = timed(argv, env, shell=name != "amber")
                    tps = round(load.tps_between(start, time.monotonic()), 1)
                    passes.append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                   "added_bytes": dir_size(store) - before, "tps_during": tps})  # fmt: skip
                results[name] = passes
                print(name, json.dumps(passes), flush=True)
        finally:
            load.stop()
    finally:
        cluster.stop()
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


def table(r: dict[str, object]) -> str:
    mib = 1024 * 1024
    size = int(str(r["db_bytes"])) / mib
    lines = [f"database {size:.0f} MiB (pgbench scale {r['scale']}, {r['random_mb']} MB of random text); "
             f"pgbench alone {r['tps_alone']:.0f} tps; 1-min load at start {r['load_1min']:.1f}", "",
             "| tool | pass | wall (s) | CPU (s) | added to the repository (MiB) | pgbench tps meanwhile |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in ("amber", "restic", "pg_dump"):
        for i, p in enumerate(r.get(name, []), 1):  # type: ignore[attr-defined]
            lines.append(f"| {name} | {i} | {p['wall_s']} | {p['cpu_s']} | {p['added_bytes'] / mib:.1f} | "
                         f"{p['tps_during']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
