"""The dashboard on a real uvicorn server on loopback: the CLI's login URL, and live progress over SSE."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amber.ops.config.model import Config
from amber.web import server

URL = re.compile(r"^http://127\.0\.0\.1:(\d+)/login\?token=([A-Za-z0-9_-]{40,})$")


@pytest.fixture
def served(web_config: Config) -> Iterator[server.Served]:
    running = server.start(server.prepare(web_config, server.WebOptions("127.0.0.1:0"), print))
    yield running
    running.stop()


def _login(client: httpx.Client, url: str) -> httpx.Client:
    assert client.get(url).status_code == 303
    return client


def test_cli_prints_the_login_url_first_and_serves(web_config: Config, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "amber", "--config", web_config.source, "web", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        match = URL.match(first)
        assert match, first
        base = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{base}/healthz").text == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert httpx.get(f"{base}/").status_code == 401
        with httpx.Client(timeout=30) as client:
            _login(client, first)
            assert 'data-job="home"' in client.get(f"{base}/").text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_cli_refuses_a_public_address_without_tls(web_config: Config) -> None:
    cmd = [sys.executable, "-m", "amber", "--config", web_config.source, "web", "--listen", "0.0.0.0:0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "refusing to serve 0.0.0.0 without TLS" in proc.stderr and "Traceback" not in proc.stderr


def test_run_now_progress_arrives_over_sse(served: server.Served) -> None:
    base = f"http://127.0.0.1:{served.port}"
    with httpx.Client(timeout=30) as client:
        _login(client, served.url)
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(f"{base}/").text)
        assert csrf
        seen: list[str] = []
        with client.stream("GET", f"{base}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == "retry: 3000"
            started = client.post(f"{base}/jobs/home/run", data={"csrf": csrf.group(1)},
                                  headers={"origin": base})  # fmt: skip
            assert started.status_code == 303
            for line in lines:
                if line.startswith("event: "):
                    assert line == "event: job-home"
                elif line.startswith("data: ") and "data-status=" in line:
                    seen.append(line)
                    if 'data-status="success"' in line or 'data-status="failed"' in line:
                        break
        assert 'data-status="running"' in seen[0]
        assert 'data-status="success"' in seen[-1]
        status = client.get(f"{base}/api/v1/status").json()
        assert status["jobs"][0]["live"]["status"] == "success" and status["jobs"][0]["live"]["files"] == 2


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_tls_serves_https_with_a_secure_cookie(web_config: Config, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    options = server.WebOptions("127.0.0.1:0", str(cert), str(key))
    running = server.start(server.prepare(web_config, options, print))
    try:
        assert running.url.startswith(f"https://127.0.0.1:{running.port}/login?token=")
        with httpx.Client(verify=str(cert), timeout=30) as client:
            response = client.get(running.url)
            assert response.status_code == 303
            cookie = response.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            status = client.get(f"https://127.0.0.1:{running.port}/api/v1/status").json()
            assert status["jobs"][0]["name"] == "home"
    finally:
        running.stop()


def _answer_to(port: int, head: bytes, body: bytes = b"") -> bytes:
    """The status line the server sends for a request whose body is (mostly) never sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        s.settimeout(10)
        try:
            return s.recv(4096).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b"no answer: the server waits for the body"


def test_an_unauthenticated_post_is_refused_without_reading_its_body(served: server.Served) -> None:
    """Anyone who reaches the port could otherwise make the server buffer a body of any size."""
    head = (b"POST /jobs/home/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")  # fmt: skip
    assert _answer_to(served.port, head) == b"HTTP/1.1 401 Unauthorized"


def test_a_post_body_over_the_limit_is_refused(served: server.Served) -> None:
    token = served.url.rpartition("token=")[2].encode()
    start = b"POST /jobs/home/run HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token + b"\r\n"
    stated = start + b"Content-Length: 1073741824\r\n\r\n"
    assert _answer_to(served.port, stated) == b"HTTP/1.1 413 Request Entity Too Large"
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)  # no length: read only up to the limit
    chunked = start + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _answer_to(served.port, chunked, chunk * 4) == b"HTTP/1.1 413 Request Entity Too Large"
