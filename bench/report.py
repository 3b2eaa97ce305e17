"""Machine description and Markdown rendering of benchmark results."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

MIB = 1 << 20
PHASES = {
    "init": "init",
    "backup1": "initial backup",
    "backup2": "unchanged re-backup",
    "backup3": "re-backup after ~1% change",
    "restore": "full restore (latest)",
}
SIZE_PHASES = ("backup1", "backup2", "backup3")


def _first_match(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def filesystem_of(path: Path) -> str:
    """Filesystem type and device of the mount holding ``path``."""
    best, desc = "", "unknown"
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype, *_ = line.split()
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, desc = mnt, f"{fstype} ({dev} on {mnt})"
    except OSError:
        pass
    return desc


def git_revision(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "no commits"


def machine_info(workdir: Path) -> dict[str, str]:
    mem_kib = _first_match("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kib) / (1 << 20):.1f} GiB" if mem_kib.isdigit() else "unknown"
    return {
        "cpu": _first_match("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "ram": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": filesystem_of(workdir),
        "python": platform.python_version(),
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def _metric(res: dict[str, Any], tool: str, phase: str, key: str) -> float | None:
    entry = res["tools"].get(tool, {}).get("phases", {}).get(phase)
    if not entry or entry.get("returncode") != 0 or entry.get(key) is None:
        return None
    return float(entry[key])


def table(res: dict[str, Any], key: str, phases: tuple[str, ...], digits: int = 2) -> str:
    tools = list(res["tools"])
    pairs = [(a, b) for a, b in (("amber", "restic"), ("amber", "borg")) if a in tools and b in tools]
    head = ["phase", *tools, *(f"{a}/{b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase in phases:
        vals = {t: _metric(res, t, phase, key) for t in tools}
        cells = [_fmt(vals[t], digits) for t in tools]
        cells = [
            c if vals[t] is not None else _status(res, t, phase) for c, t in zip(cells, tools, strict=True)
        ]
        cells += [_ratio(vals[a], vals[b]) for a, b in pairs]
        lines.append("| " + " | ".join([PHASES[phase], *cells]) + " |")
    return "\n".join(lines)


def _status(res: dict[str, Any], tool: str, phase: str) -> str:
    entry = res["tools"].get(tool, {}).get("phases", {}).get(phase)
    if entry is None:
        return "not run"
    return f"FAILED (exit {entry.get('returncode')})"


def results_tables(res: dict[str, Any]) -> str:
    all_phases = tuple(PHASES)
    return "\n\n".join(
        [
            "### Wall-clock time (s)\n\n" + table(res, "wall_s", all_phases),
            "### CPU time, user+sys (s)\n\n" + table(res, "cpu_s", all_phases),
            "### Peak RSS, largest process (MiB)\n\n" + table(res, "max_rss_mib", all_phases, 1),
            "### Peak RSS, sum over process tree, sampled every 0.1 s (MiB)\n\n"
            + table(res, "tree_rss_mib", all_phases, 1),
            "### Repository size after each backup (MiB)\n\n" + table(res, "repo_mib", SIZE_PHASES, 1),
        ]
    )


def notes(res: dict[str, Any]) -> list[str]:
    out = []
    for tool, data in res["tools"].items():
        for phase, entry in data.get("phases", {}).items():
            if entry.get("returncode") != 0:
                out.append(f"- **{tool} {phase} failed** (exit {entry.get('returncode')}):")
                out.append("\n```\n" + str(entry.get("error", "")).strip() + "\n```")
        verify = data.get("phases", {}).get("restore", {}).get("verify")
        if verify is not None:
            out.append(f"- {tool} restore verification: {verify}")
    return out


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    ds = res["dataset"]
    summary = ds["summary"]
    kinds = ", ".join(
        f"{k}: {v['files']} files / {v['bytes'] / MIB:.1f} MiB" for k, v in summary.items() if k != "total"
    )
    total = summary["total"]
    mut = ds.get("mutation") or {}
    versions = "\n".join(f"- {t}: `{d.get('version', '?')}`" for t, d in res["tools"].items())
    parts = [
        "# Benchmarks: amber vs restic vs borg",
        "",
        f"Generated by `{res['command']}` on {res['date']} (amber at `{res['amber_revision']}`).",
        "See `bench/README.md` for the method; raw JSON: `" + res["json_path"] + "`.",
        "",
        *(
            [
                f"> **Smoke-test run on a {ds['size_gb']} GiB dataset**: figures are dominated by",
                "> start-up costs. Run `python bench/run.py --write-docs` (2 GiB) for real numbers.",
                "",
            ]
            if ds["size_gb"] < 1
            else []
        ),
        "## Machine",
        "",
        f"- CPU: {m['cpu']} ({m['cores']} logical cores)",
        f"- RAM: {m['ram']}",
        f"- Kernel: {m['kernel']}",
        f"- Filesystem (workdir): {m['filesystem']}",
        f"- Python: {m['python']}",
        f"- Page cache dropped before each phase: {'yes' if res['drop_caches'] else 'NO'}",
        "",
        "## Tool versions",
        "",
        versions,
        "",
        "## Dataset",
        "",
        f"- Deterministic (seed {ds['seed']}), {ds['size_gb']} GiB requested: "
        f"{total['files']} files in {total['dirs']} directories, {total['bytes'] / MIB:.1f} MiB.",
        f"- {kinds}.",
        f"- Change before the third backup: {mut.get('modified_files', 0)} files modified, "
        f"{mut.get('added_files', 0)} added, {mut.get('bytes_written', 0) / MIB:.2f} MiB written.",
        "",
        "## Results",
        "",
        results_tables(res),
        "",
        "Ratios are amber divided by the other tool (below 1.00x means amber is smaller/faster).",
        "",
    ]
    extra = notes(res)
    if extra:
        parts += ["## Notes", "", *extra, ""]
    return "\n".join(parts)
