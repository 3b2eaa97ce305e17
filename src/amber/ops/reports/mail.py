"""Reports by mail: a multipart message (text and HTML, the PDF attached when asked) through SMTP.

There is no second mail config: the SMTP server, credentials, sender and
recipients come from a ``[[notify]]`` target's apprise ``mailto://`` /
``mailtos://`` URL, read by apprise's own parser. Apprise itself would derive
the text part from the HTML; a report has its own text rendering, so the
message is composed here and handed to ``smtplib``. Other targets (ntfy,
Telegram, webhooks ...) get the text through apprise, the PDF attached where
the service takes attachments.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import socket
import ssl
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from amber.redact import redact

TIMEOUT = 30.0


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    mode: str  # insecure | ssl | starttls (apprise's secure modes)
    user: str | None
    password: str | None
    sender: str
    sender_name: str
    recipients: tuple[str, ...]
    verify: bool = True


@dataclass(frozen=True)
class Parts:
    subject: str
    text: str
    html: str | None = None
    pdf: bytes | None = None
    pdf_name: str = "report.pdf"


def smtp_of(url: str) -> Smtp | None:
    """The SMTP settings of an apprise email URL; None for any other kind of target."""
    import apprise  # slow to import: only when a report is sent

    plugin: Any = apprise.Apprise.instantiate(url)
    if plugin is None or not hasattr(plugin, "smtp_host") or not hasattr(plugin, "secure_mode"):
        return None
    sender = plugin.from_addr  # [name, address]
    recipients = tuple(address for _name, address in plugin.targets)
    return Smtp(str(plugin.smtp_host), int(plugin.port), str(plugin.secure_mode), plugin.user or None,
                plugin.password or None, str(sender[1]), str(sender[0] or ""), recipients,
                bool(plugin.verify_certificate))  # fmt: skip


def compose(parts: Parts, smtp: Smtp) -> EmailMessage:
    """multipart/mixed( multipart/alternative(text, html), pdf ) — or less, when there is less."""
    msg = EmailMessage()
    msg["Subject"] = parts.subject
    msg["From"] = formataddr((smtp.sender_name, smtp.sender)) if smtp.sender_name else smtp.sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=smtp.host or socket.gethostname())
    msg.set_content(parts.text)
    if parts.html is not None:
        msg.add_alternative(parts.html, subtype="html")
    if parts.pdf is not None:
        msg.add_attachment(parts.pdf, maintype="application", subtype="pdf", filename=parts.pdf_name)
    return msg


def send_smtp(smtp: Smtp, msg: EmailMessage) -> str:
    """Deliver; returns "" or why not (credentials masked)."""
    if not smtp.recipients:
        return "no recipients in the mail URL"
    context = ssl.create_default_context()
    if not smtp.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        client: smtplib.SMTP
        if smtp.mode == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT)
        with client:
            if smtp.mode == "starttls":
                client.starttls(context=context)
            if smtp.user and smtp.password:
                client.login(smtp.user, smtp.password)
            refused = client.send_message(msg, smtp.sender, list(smtp.recipients))
    except (OSError, smtplib.SMTPException) as exc:
        return redact(f"SMTP {smtp.host}:{smtp.port}: {exc}", (smtp.password or "",))
    if refused:
        return f"SMTP {smtp.host}:{smtp.port} refused " + ", ".join(sorted(refused))
    return ""


def send_other(url: str, parts: Parts) -> str:
    """A non-mail target through apprise: the text, the PDF attached where the service takes files."""
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        return "not a valid apprise URL"
    with contextlib.ExitStack() as stack:
        attach = None
        if parts.pdf is not None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="amber-report-"))
            path = os.path.join(folder, parts.pdf_name)
            with open(path, "wb") as f:
                f.write(parts.pdf)
            attach = path
        ok = app.notify(body=parts.text, title=parts.subject, attach=attach)
    return "" if ok else "delivery failed"
