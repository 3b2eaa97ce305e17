"""Report mail over TLS to a real SMTP server on loopback: implicit TLS, and STARTTLS with a login."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from amber.ops.reports import mail
from tests.receivers import SmtpSink, free_port

PASSWORD = "smtp-pa55word"


def _context(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    cert = (builder.serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"reports" and data.password == PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture(name="tls_servers")
def tls_servers_fixture(tmp_path: Path) -> Iterator[tuple[SmtpSink, int, int]]:
    sink = SmtpSink()
    context = _context(tmp_path)
    implicit = Controller(sink, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    starttls = Controller(sink, hostname="127.0.0.1", port=free_port(), tls_context=context,
                          require_starttls=True, authenticator=_login, auth_required=True)  # fmt: skip
    implicit.start()
    starttls.start()
    yield sink, implicit.port, starttls.port
    implicit.stop()
    starttls.stop()


def test_report_mail_over_implicit_tls_and_starttls_with_login(
    tls_servers: tuple[SmtpSink, int, int],
) -> None:
    sink, implicit, starttls = tls_servers
    parts = mail.Parts("amber daily report: 1 ok, 0 partial, 0 failed", "text body", "<p>html body</p>")
    urls = [
        f"mailtos://127.0.0.1:{implicit}?mode=ssl&verify=no&to=ops@example.com&from=amber@example.com",
        f"mailtos://reports:{PASSWORD}@127.0.0.1:{starttls}?mode=starttls&verify=no&to=ops@example.com"
        "&from=amber@example.com",
    ]
    for url in urls:
        smtp = mail.smtp_of(url)
        assert smtp is not None
        assert mail.send_smtp(smtp, mail.compose(parts, smtp)) == ""
    got = sink.wait(2)
    assert [m["Subject"] for m in got] == [parts.subject] * 2
    assert all(m.get_body(("html",)) is not None for m in got)
