"""Durations as users write them in configs: ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# A thousand years: later than any schedule needs, and dates this far ahead still compute.
_MAX_SECONDS = 1000 * 365 * 86400.0
# What the JSON schemas of configs state (lower case, no spaces; parse also takes those).
DURATION_PATTERN = "^([0-9]{1,4}(\\.[0-9]{1,4})?(ms|s|m|h|d))+$"


def parse_duration(text: str) -> timedelta:
    """Parse a sum of parts with units d, h, m, s, ms (``"1h30m"``, ``"2d"``, ``"1.5s"``).

    Raises:
        ValueError: the text is not such a duration.
    """
    compact = text.replace(" ", "").lower()
    if not compact or _PART.sub("", compact):
        raise ValueError(f"{text!r} is not a duration like '30s', '5m', '1h30m' or '2d'")
    seconds = sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(compact))
    if not seconds <= _MAX_SECONDS:  # also NaN-safe; float('9' * 400) is inf
        raise ValueError(f"{text!r} is longer than 1000 years")
    return timedelta(seconds=seconds)
