"""``[anomaly]`` and ``[jobs.NAME.anomaly]`` in the config file."""

from __future__ import annotations

import pytest

from amber.anomaly.scoring import Thresholds
from amber.errors import ConfigError
from amber.ops.config.model import parse_config

BASE = """
[repositories.r]
url = "/tmp/r"
[jobs.a]
paths = ["/home"]
[jobs.b]
paths = ["/srv"]
[jobs.b.anomaly]
min_files = 100
enabled = false
"""


def test_defaults_global_and_per_job() -> None:
    cfg = parse_config(BASE + "[anomaly]\nchanged_share = 0.3\nhold_clean = 2\n")
    assert cfg.anomaly == Thresholds(changed_share=0.3, hold_clean=2)
    assert cfg.jobs["a"].anomaly == cfg.anomaly
    assert cfg.jobs["b"].anomaly == Thresholds(changed_share=0.3, hold_clean=2, min_files=100, enabled=False)
    assert parse_config(BASE).anomaly == Thresholds()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("[anomaly]\nchanged_shar = 0.3\n", "anomaly.changed_shar"),
        ("[anomaly]\nchanged_share = 1.5\n", "must be at most 1.0"),
        ("[anomaly]\nmin_files = -1\n", "must be at least 0"),
        ("[anomaly]\nenabled = 1\n", "expected true or false"),
    ],
)
def test_bad_values_name_the_key(extra: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        parse_config(BASE + extra)
