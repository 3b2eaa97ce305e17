"""``[anomaly]`` and ``[jobs.NAME.anomaly]``: ransomware-check thresholds (docs/config.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

from amber.anomaly.scoring import Thresholds
from amber.ops.config import check as cc
from amber.ops.config.check import Reader

_COUNTS = ("min_files", "ransom_notes", "hold_clean")
_SHARES = ("changed_share", "random_share", "rename_share", "rename_one_extension", "deleted_share")


def parse_anomaly(r: Reader, t: dict[str, Any], p: cc.KeyPath, base: Thresholds) -> Thresholds:
    """``base`` with the keys of table ``t`` (at ``p``) replaced; unknown keys are errors."""
    r.only(t, p, ("enabled", *_COUNTS, *_SHARES))
    values: dict[str, Any] = {}
    if "enabled" in t:
        values["enabled"] = r.boolean(t, p, "enabled")
    for key in _COUNTS:
        n = r.integer(t, p, key, 0, None)
        if n is not None:
            values[key] = n
    for key in _SHARES:
        x = r.number(t, p, key, 0.0, 1.0)
        if x is not None:
            values[key] = x
    return dataclasses.replace(base, **values)
