"""[web]: the dashboard `amber daemon` serves."""

from __future__ import annotations

import re

import pytest

from amber.errors import ConfigError
from amber.ops.config.model import parse_config

JOB = '[repositories.r]\nurl = "/srv/r"\npassword_file = "/p"\n[jobs.j]\npaths = ["/x"]\nrepository = "r"\n'


def test_defaults_serve_nothing() -> None:
    web = parse_config(JOB).web
    assert web.listen is None and web.tls_cert is None and not web.insecure_no_tls


def test_values() -> None:
    cfg = parse_config('[web]\nlisten = "0.0.0.0:8440"\ntls_cert = "~/c.pem"\ntls_key = "/k.pem"\n'
                       'allow_hosts = ["nas.lan"]\n' + JOB)  # fmt: skip
    assert cfg.web.listen == "0.0.0.0:8440" and cfg.web.tls_key == "/k.pem"
    assert cfg.web.tls_cert is not None and not cfg.web.tls_cert.startswith("~")
    assert cfg.web.allow_hosts == ("nas.lan",)


@pytest.mark.parametrize(("table", "expected"), [
    ('listen = "8440"', r":2: web\.listen: expected HOST:PORT"),
    ('listen = "host:99999"', r":2: web\.listen: expected HOST:PORT"),
    ('tls_cert = "/c.pem"', r":1: web\.tls_key: give both tls_cert and tls_key"),
    ('insecure_no_tls = "yes"', r":2: web\.insecure_no_tls: expected true or false"),
    ('port = 1', r":2: web\.port: unknown key"),
])  # fmt: skip
def test_errors(table: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[web]\n{table}\n" + JOB, "c.toml")
    assert re.match(r"c\.toml" + expected, info.value.message), info.value.message
