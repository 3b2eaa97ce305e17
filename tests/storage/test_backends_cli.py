"""End to end through the real CLI on every remote backend: init, backup, restore, check.

Each backend runs against its real server on loopback (servers.py). A fault test
backs up through a backend that fails 10% of its requests and checks the result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import AmberCli
from tests.storage.servers import RestServer, S3Server, SshServer, rclone_env


def make_tree(root: Path) -> dict[str, str]:
    """A small tree: many small files, one larger file, a nested directory; name -> sha256."""
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {f"small-{i}.txt": (f"file {i}\n" * (i + 1)).encode() for i in range(20)}
    files["sub/big.bin"] = os.urandom(1024 * 1024) + b"\0" * (256 * 1024)
    files["sub/deeper/empty"] = b""
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def round_trip(cli: AmberCli, tmp: Path, incremental: bool = True) -> None:
    src = tmp / "src"
    src.mkdir()
    want = make_tree(src)
    cli.run("init")
    cli.run("backup", str(src))
    if incremental:  # a second backup reads the index and parent through the same backend
        (src / "added.txt").write_bytes(b"second run\n")
        want["added.txt"] = hashlib.sha256(b"second run\n").hexdigest()
        cli.run("backup", str(src))
    target = tmp / "restored"
    cli.run("restore", "latest", "--target", str(target))
    restored = tree_hashes(target)
    got = {k.split("src/", 1)[-1]: v for k, v in restored.items()}
    assert got == want
    cli.run("check", "--read-data")


Setup = Callable[[Path, pytest.FixtureRequest], tuple[str, dict[str, str]]]


def _sftp(tmp: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    server: SshServer = request.getfixturevalue("sshd_server")
    return server.url(tmp / "remote-repo"), server.env()


def _s3(tmp: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3:{server.endpoint}/{bucket}/{tmp.name}", server.env()


def _rest(tmp: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    server: RestServer = request.getfixturevalue("rest_server")
    return server.repo_url(), {}


def _rclone(tmp: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    request.getfixturevalue("rest_server")  # skips when rclone is missing
    return f"rclone:amberlocal:{tmp / 'rclone-repo'}", rclone_env(tmp)


@pytest.mark.parametrize("setup", [_sftp, _s3, _rest, _rclone], ids=["sftp", "s3", "rest", "rclone"])
def test_init_backup_restore_check(tmp_path: Path, request: pytest.FixtureRequest, setup: Setup) -> None:
    url, env = setup(tmp_path, request)
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(env, AMBER_REPOSITORY=url)
    # rest and rclone share the REST client: one incremental run covers it
    round_trip(cli, tmp_path, incremental=request.node.callspec.id != "rest")


def test_sftp_repository_files_land_on_the_server(tmp_path: Path, sshd_server: SshServer) -> None:
    url = sshd_server.url(tmp_path / "remote-repo")
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(sshd_server.env(), AMBER_REPOSITORY=url)
    cli.run("init")
    root = tmp_path / "remote-repo"
    assert (root / "config").is_file()
    assert len(list((root / "keys").iterdir())) == 1
    assert sorted(p.name for p in (root / "data").iterdir())[:2] == ["00", "01"]


def test_sftp_unknown_host_key_is_refused_then_accepted_on_request(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    known = home / ".ssh" / "known_hosts"
    (home / ".ssh" / "config").write_text(
        f"Host h\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User {sshd_server.user}\n"
        f"  IdentityFile {sshd_server.identity}\n"
    )
    url = f"sftp://h/{tmp_path / 'repo'}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(HOME=str(home), SSH_AUTH_SOCK="", AMBER_REPOSITORY=url)
    refused = cli.run("init", check=False)
    assert refused.returncode == 1
    assert "not in known_hosts" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "repo").exists()
    cli.run("-o", "sftp.accept-new-host-key=true", "init")
    assert f"[127.0.0.1]:{sshd_server.port}" in known.read_text()
    # a changed host key is refused even with the option
    known.write_text(known.read_text().replace("AAAA", "AAAB", 1))
    changed = cli.run("-o", "sftp.accept-new-host-key=true", "snapshots", check=False)
    assert changed.returncode != 0 and "Traceback" not in changed.stderr


def test_sftp_wrong_key_is_permission_denied(tmp_path: Path, sshd_server: SshServer) -> None:
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host h\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User {sshd_server.user}\n"
        f"  IdentityFile {other}\n  UserKnownHostsFile {sshd_server.known_hosts}\n"
    )
    url = f"sftp://h/{tmp_path / 'repo'}"
    cli = AmberCli(Path(url), tmp_path)
    cli.env.update(SSH_AUTH_SOCK="", AMBER_REPOSITORY=url)
    result = cli.run("-o", f"sftp.ssh-config={cfg}", "init", check=False)
    assert result.returncode == 16, result.stderr  # PermissionDenied
    assert "authentication" in result.stderr


def test_backup_at_ten_percent_faults_completes_and_checks(tmp_path: Path) -> None:
    """Errors, timeouts and truncated reads on 10% of requests: retries carry the backup through."""
    repo = tmp_path / "repo"
    cli = AmberCli(repo, tmp_path)
    cli.run("init")
    faulty = {"AMBER_FAULT_RATE": "0.1", "AMBER_FAULT_SEED": "7"}
    src = tmp_path / "src"
    src.mkdir()
    want = make_tree(src)
    for seed in ("7", "8"):  # two runs, two different fault sequences
        faulty["AMBER_FAULT_SEED"] = seed
        (src / f"run-{seed}").write_bytes(os.urandom(200_000))
        want[f"run-{seed}"] = hashlib.sha256((src / f"run-{seed}").read_bytes()).hexdigest()
        cli.run("-o", "retry-delay=0.01", "backup", str(src), env=faulty)
    cli.run("check", "--read-data")
    target = tmp_path / "restored"
    cli.run("-o", "retry-delay=0.01", "restore", "latest", "--target", str(target), env=faulty)
    got = {k.split("src/", 1)[-1]: v for k, v in tree_hashes(target).items()}
    assert got == want


def test_faults_without_retries_do_fail(tmp_path: Path) -> None:
    """The fault hook really injects: with retries off, a faulty run fails with exit code 30."""
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cli.run("init")
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    result = cli.run("-o", "retries=0", "backup", str(src), env={"AMBER_FAULT_RATE": "0.5"}, check=False)
    assert result.returncode == 30, result.stderr
    assert "injected" in result.stderr
    cli.run("check")  # whatever the failure left behind is consistent


def test_limit_upload_option_is_accepted_and_validated(tmp_path: Path) -> None:
    cli = AmberCli(tmp_path / "repo", tmp_path)
    cli.run("--limit-upload", "100000", "--limit-download", "100000", "init")
    bad = cli.run("--limit-upload", "-5", "snapshots", check=False)
    assert bad.returncode == 2
    unknown = cli.run("-o", "nonsense=1", "snapshots", check=False)
    assert unknown.returncode == 2 and "unknown backend option" in unknown.stderr


def test_sftp_prefers_aes_gcm_and_writes_large_files_whole(
    tmp_path: Path, sshd_server: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSH offers AES-GCM: one AEAD call per packet. A write larger than one request
    (128 KiB) and one SSH packet arrives whole."""
    from amber.storage.base import FileType, Handle
    from amber.storage.sftp import SftpBackend
    from amber.storage.url import find_layer, open_backend

    for key, value in sshd_server.env().items():
        monkeypatch.setenv(key, value)
    backend = open_backend(sshd_server.url(tmp_path / "repo"))
    backend.create()
    raw = find_layer(backend, SftpBackend)
    assert raw is not None
    data = os.urandom(3 * 128 * 1024 + 12345)
    backend.save(Handle(FileType.PACK, hashlib.sha256(data).hexdigest()), memoryview(data))
    assert backend.load(Handle(FileType.PACK, hashlib.sha256(data).hexdigest())) == data
    with raw._sftp("cipher") as sftp:
        channel = sftp.get_channel()
        assert channel is not None
        transport = channel.get_transport()
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
    backend.close()
