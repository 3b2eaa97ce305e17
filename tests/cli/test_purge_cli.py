"""amber purge and amber rewrite through the real CLI: exit codes, find, the audit log, --everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amber.services import session
from tests.conftest import PASSWORD, AmberCli
from tests.services.erasure_support import manifest, random_bytes

SECRET = "alice-payslip-2026.pdf"


def _source(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "hr").mkdir(parents=True)
    (src / "hr" / SECRET).write_bytes(random_bytes(300_000, "payslip"))
    (src / "hr" / "policy.txt").write_bytes(b"policy\n" * 2000)
    return src


def _audit_records(tmp: Path, command: str) -> list[dict[str, object]]:
    lines = (tmp / "xdg-state" / "amber" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("command") == command]


@pytest.mark.slow
def test_purge_end_to_end(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    (src / "hr" / "policy.txt").write_bytes(b"policy v2\n" * 2000)
    cli.run("backup", str(src))
    assert cli.run("find", SECRET).stdout.count(SECRET) == 2  # the catalog now names it
    target = f"{src}/hr/{SECRET}"
    refused = cli.run("purge", target, check=False)  # not a terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    dry = cli.run("purge", target, "--dry-run")
    assert "would purge 2 files" in dry.stdout
    done = cli.run("purge", target, "--yes")
    assert "verified:" in done.stdout, done.stdout + done.stderr
    assert SECRET not in cli.run("find", SECRET).stdout
    listing = cli.run("ls", "latest", str(src)).stdout
    assert SECRET not in listing and "policy.txt" in listing
    assert cli.run("check", "--read-data").returncode == 0
    [record] = [r for r in _audit_records(tmp_path, "purge") if "--yes" in r["args"]]  # type: ignore[operator]
    details = record["details"]["purge"]  # type: ignore[index]
    assert details["paths"] == [target] and details["verified"] is True and details["files"] == 2
    assert len(details["snapshots"]) == 2 and all(s["new"] for s in details["snapshots"])
    assert "content" not in json.dumps(details)
    cli.run("audit", "verify")


def test_purge_refused_in_an_append_only_repository(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cli.run("init", "--append-only")
    src = _source(tmp_path)
    cli.run("backup", str(src))
    res = cli.run("purge", f"{src}/hr/{SECRET}", "--yes", check=False)
    assert res.returncode == 38
    assert res.stderr.count("\n") == 1 and "append-only" in res.stderr and "Traceback" not in res.stderr
    assert SECRET in cli.run("ls", "latest", str(src)).stdout


def test_rewrite_cli_dry_run_then_forget(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src))
    dry = json.loads(cli.run("rewrite", "--exclude", SECRET, "--dry-run", "--json").stdout)
    [entry] = dry["snapshots"]
    assert entry["removed"][0]["path"].endswith(SECRET) and entry["new_snapshot"] is None
    out = cli.run("rewrite", "--exclude", SECRET, "--forget").stdout
    assert "rewrote 1 of 1 snapshot" in out and "1 original(s) removed" in out
    assert SECRET not in cli.run("ls", "latest", str(src)).stdout
    bad = cli.run("rewrite", "--sha256", "xyz", check=False)
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr


@pytest.mark.slow
def test_purge_everywhere_reports_each_destination(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text(PASSWORD + "\n")
    for name in ("main", "mirror"):
        session.create(str(tmp_path / name), PASSWORD.encode()).close()
    session.create(str(tmp_path / "vault"), PASSWORD.encode(), append_only=True).close()
    src = _source(tmp_path)
    repos = "".join(f'[repositories.{n}]\nurl = "{tmp_path / n}"\npassword_file = "{tmp_path / "pass"}"\n\n'
                    for n in ("main", "mirror", "vault"))  # fmt: skip
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""{repos}
[jobs.home]
paths = ["{src}"]
repository = "main"
mirrors = ["mirror", "vault"]

[state]
path = "{tmp_path / 'state' / 'state.db'}"
audit_log = "{tmp_path / 'state' / 'audit.log'}"
""")
    cli = AmberCli(tmp_path / "main", tmp_path)
    cli.run("--config", str(cfg), "run", "home")
    target = f"{src}/hr/{SECRET}"
    for name in ("main", "mirror", "vault"):
        assert SECRET in cli.run("-r", str(tmp_path / name), "ls", "latest", str(src)).stdout
    res = cli.run("--config", str(cfg), "-r", "main", "purge", target, "--everywhere", "--yes", "--json",
                  check=False)  # fmt: skip
    assert res.returncode == 38, res.stderr
    outcome = {o["name"]: o for o in json.loads(res.stdout)}
    assert outcome["main"]["status"] == "purged" and outcome["main"]["verified"] is True
    assert outcome["mirror"]["status"] == "purged" and outcome["mirror"]["verified"] is True
    assert outcome["vault"]["status"] == "refused" and "append-only" in outcome["vault"]["error"]
    assert "refused by vault" in res.stderr
    for name in ("main", "mirror"):
        listing = cli.run("-r", str(tmp_path / name), "ls", "latest", str(src)).stdout
        assert SECRET not in listing and "policy.txt" in listing
    assert SECRET in cli.run("-r", str(tmp_path / "vault"), "ls", "latest", str(src)).stdout
    [record] = [r for r in map(json.loads, (tmp_path / "state" / "audit.log").read_text().splitlines())
                if r.get("command") == "purge"]  # fmt: skip
    assert [d["status"] for d in record["details"]["purge"]] == ["purged", "purged", "refused"]


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_purging_a_20mb_file_shrinks_the_repository_by_about_its_size(cli: AmberCli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    big = src / "hr" / "scan.tiff"
    big.write_bytes(random_bytes(20 << 20, "scan"))
    wanted = {}
    for i in range(3):
        (src / "hr" / "policy.txt").write_bytes(f"policy {i}\n".encode() * 2000)
        cli.run("backup", str(src))
        wanted[i] = {k: v for k, v in manifest(src).items() if k != "hr/scan.tiff"}
    before = _size(cli.repo)
    cli.run("purge", str(big), "--yes")
    shrunk = before - _size(cli.repo)
    assert 19 << 20 <= shrunk <= 22 << 20, shrunk
    snaps = json.loads(cli.run("snapshots", "--json").stdout)
    assert len(snaps) == 3
    for i, snap in enumerate(sorted(snaps, key=lambda s: s["time"])):
        assert "scan.tiff" not in cli.run("ls", snap["id"], str(src)).stdout
        target = tmp_path / f"restore{i}"
        cli.run("restore", snap["id"], "--target", str(target))
        assert manifest(target / src.relative_to("/")) == wanted[i]
    assert cli.run("check", "--read-data").returncode == 0
    [record] = [r for r in _audit_records(tmp_path, "purge")]
    assert record["details"]["purge"]["paths"] == [str(big)]  # type: ignore[index]
    assert record["details"]["purge"]["bytes"] == 3 * (20 << 20)  # type: ignore[index]
