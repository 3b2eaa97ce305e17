"""Benchmark amber against restic and borg on a deterministic dataset.

Phases, per tool: init, initial backup, unchanged re-backup; then the dataset
is mutated once (~1 % of files); then per tool a third backup; then per tool
a full restore of the latest snapshot (verified against the dataset).

Usage: python bench/run.py [--size-gb N] [--workdir DIR] [--skip restic,borg] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import dataset
import measure
import report
from tools import Tool, amber_command, ensure_installed

ALL_TOOLS = ("amber", "restic", "borg")
REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
KEEP_MARKER = "<!-- sections below are kept when run.py regenerates this file -->"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gb", type=float, default=2.0, help="dataset size in GiB (default 2)")
    p.add_argument("--workdir", type=Path, default=Path("/var/tmp/amber-bench"))
    p.add_argument("--skip", default="", help="comma-separated tools to skip, e.g. restic,borg")
    p.add_argument("--seed", type=int, default=1, help="dataset seed (default 1)")
    p.add_argument("--mutate-fraction", type=float, default=0.01)
    p.add_argument("--write-docs", action="store_true", help=f"write {DOCS_PATH}")
    p.add_argument("--no-verify", action="store_true", help="do not verify restored trees")
    p.add_argument("--keep-restores", action="store_true", help="keep restored trees on disk")
    p.add_argument("--no-disk-check", action="store_true", help="skip the free-space check")
    p.add_argument("--prune", action="store_true", help="run only the prune benchmark (see bench/prune.py)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    """Holds state of one benchmark run; results go to ``self.res``."""

    def __init__(self, args: argparse.Namespace, tools: list[Tool], data: Path) -> None:
        self.args = args
        self.tools = tools
        self.data = data
        self.workdir: Path = args.workdir
        self.drop_ok = True
        self.res: dict[str, Any] = {"tools": {t.name: {"phases": {}} for t in tools}}

    def phases(self, tool: Tool) -> dict[str, Any]:
        result: dict[str, Any] = self.res["tools"][tool.name]["phases"]
        return result

    def failed(self, tool: Tool) -> bool:
        return any(e.get("returncode") != 0 for e in self.phases(tool).values())

    def run_phase(self, tool: Tool, phase: str, cmd: list[str], cwd: Path | None = None) -> dict[str, Any]:
        self.drop_ok = measure.drop_caches() and self.drop_ok
        log(f"{tool.name} {phase}: {shlex.join(cmd)}")
        log_path = self.workdir / "logs" / f"{tool.name}-{phase}.log"
        log_path.unlink(missing_ok=True)
        m = measure.run_measured(cmd, tool.env(), log_path, cwd)
        entry: dict[str, Any] = {
            "wall_s": round(m.wall_s, 3),
            "cpu_s": round(m.cpu_s, 3),
            "user_s": round(m.user_s, 3),
            "sys_s": round(m.sys_s, 3),
            "max_rss_mib": round(m.max_rss_kib / 1024, 1),
            "tree_rss_mib": round(m.tree_rss_kib / 1024, 1),
            "returncode": m.returncode,
        }
        if not m.ok:
            entry["error"] = m.error
            log(f"  FAILED (exit {m.returncode}):\n{m.error}")
        else:
            log(f"  {m.wall_s:.2f}s wall, {m.cpu_s:.2f}s cpu, {m.max_rss_kib / 1024:.0f} MiB RSS")
        self.phases(tool)[phase] = entry
        return entry

    def backup(self, tool: Tool, n: int) -> None:
        if self.failed(tool):
            return
        entry = self.run_phase(tool, f"backup{n}", tool.backup_cmd(self.data, n))
        repo = measure.du_bytes(tool.repo)
        entry.update(
            repo_bytes=repo,
            repo_mib=round(repo / (1 << 20), 2),
            cache_bytes=measure.du_bytes(tool.state),
        )

    def first_backups(self, tool: Tool) -> None:
        tool.reset()
        self.res["tools"][tool.name]["version"] = tool.version()
        self.run_phase(tool, "init", tool.init_cmd())
        self.backup(tool, 1)
        self.backup(tool, 2)

    def restore(self, tool: Tool, expected: dict[str, tuple[int, str]] | None) -> None:
        if self.failed(tool):
            return
        target = self.workdir / "restore" / tool.name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        cmd, cwd = tool.restore_cmd(target, 3)
        entry = self.run_phase(tool, "restore", cmd, cwd)
        if entry["returncode"] == 0 and expected is not None:
            root = locate_restored(target, self.data)
            diff = measure.compare_trees(expected, measure.tree_digest(root)) if root else "not found"
            entry["verify"] = "OK (all files identical)" if not diff else f"MISMATCH: {diff}"
            log(f"  verify: {entry['verify']}")
        if not self.args.keep_restores:
            shutil.rmtree(target, ignore_errors=True)


def locate_restored(target: Path, data: Path) -> Path | None:
    """Where a tool put the restored dataset inside ``target``."""
    for cand in (target / str(data.resolve()).lstrip("/"), target / data.name, target):
        if (cand / "src").is_dir():
            return cand
    return None


def check_disk(workdir: Path, size_gb: float) -> None:
    need = int(size_gb * (1 << 30) * 5)  # data + 3 repos + 1 restore, with margin
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise SystemExit(
            f"not enough space in {workdir}: {free >> 20} MiB free, ~{need >> 20} MiB needed "
            "(use --workdir or --no-disk-check)"
        )


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if "--prune" in given:  # the prune benchmark alone (bench/prune.py takes the other options)
        import prune

        return prune.main(given)
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(ALL_TOOLS):
        raise SystemExit(f"unknown tool(s) in --skip: {sorted(skip - set(ALL_TOOLS))}")
    names = [n for n in ALL_TOOLS if n not in skip]
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.no_disk_check:
        check_disk(args.workdir, args.size_gb)
    for note in ensure_installed(names):
        log(note)
    tools = [Tool(n, args.workdir) for n in names]
    if "amber" in names:
        log(f"amber command: {shlex.join(amber_command())}")

    data = args.workdir / "data"
    plan = dataset.ensure(data, args.size_gb, args.seed)
    bench = Bench(args, tools, data)
    for tool in tools:
        bench.first_backups(tool)
    log(f"mutating ~{args.mutate_fraction:.0%} of the dataset")
    mutation = dataset.mutate(data, args.mutate_fraction, seed=args.seed + 1000)
    for tool in tools:
        bench.backup(tool, 3)
    expected = None if args.no_verify else measure.tree_digest(data)
    for tool in tools:
        bench.restore(tool, expected)

    res = bench.res
    json_path = args.workdir / "results.json"
    res.update(
        date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        command="python bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        amber_revision=report.git_revision(REPO_ROOT),
        machine=report.machine_info(args.workdir),
        drop_caches=bench.drop_ok,
        json_path=str(json_path),
        dataset={
            "size_gb": args.size_gb,
            "seed": args.seed,
            "summary": plan.summary(),
            "mutation": {
                "modified_files": len(mutation.modified),
                "added_files": len(mutation.added),
                "bytes_written": mutation.bytes_written,
            },
        },
    )
    text = json.dumps(res, indent=1)
    json_path.write_text(text)
    (args.workdir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    print(report.results_tables(res) + "\n")
    for line in report.notes(res):
        print(line)
    print(f"\npage cache dropped before each phase: {bench.drop_ok}; raw JSON: {json_path}")
    if args.write_docs:
        DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
        kept = ""  # sections measured by other scripts (copy, prune) survive a regeneration
        if DOCS_PATH.exists() and KEEP_MARKER in (old := DOCS_PATH.read_text()):
            kept = "\n" + old[old.index(KEEP_MARKER) :]
        DOCS_PATH.write_text(report.markdown(res) + kept)
        log(f"wrote {DOCS_PATH}")
    return 1 if any(bench.failed(t) for t in tools) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
