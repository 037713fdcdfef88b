"""Durations as people write them: `90`, `45s`, `2h`, `1h30m`, `500ms`. Pure functions."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration"]

_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`; raises ValueError with a how-to-write-it message."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '2h' or '1h30m', got a boolean")
    if isinstance(value, (int, float)):
        try:
            return _positive(float(value))
        except OverflowError:
            raise ValueError("a duration must be a finite number of seconds") from None
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        try:
            total, pos = float(text), len(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a duration; write it like '30s', '2h', '1h30m' or 90"
            ) from None
    return _positive(total)


def _positive(seconds: float) -> float:
    """`seconds` if it is a usable duration: finite and above zero."""
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds
