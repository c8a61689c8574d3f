"""Sizes and durations as people write them: ``10GB``, ``500MiB``, ``90s``, ``6h``."""

from __future__ import annotations

import re

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?")
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """``10GB``, ``500M``, ``1.5GiB``, ``2048`` as bytes (kB, MB, GB, TB are powers of 1000; KiB... of 1024)."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 500MB or 10GB")
    number, prefix, binary = match.groups()
    return int(float(number) * (1024 if binary else 1000) ** _SIZE_POWERS[prefix])


def format_size(size: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def parse_duration(text: str | float) -> float:
    """``90``, ``90s``, ``30m``, ``6h``, ``2d`` as seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        spelled = str(text).strip().lower()
        unit = spelled[-1] if spelled and spelled[-1] in _DURATION_UNITS else "s"
        number = spelled[:-1] if spelled and spelled[-1] in _DURATION_UNITS else spelled
        try:
            seconds = float(number) * _DURATION_UNITS[unit]
        except ValueError:
            raise ValueError(f"{text!r} is not a duration such as 90s, 30m or 6h") from None
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds
