"""A day of hourly dumps made from the real 2020 prefix: every real line in every hour, its
count scaled by a daily cycle and a seeded factor per page and hour, so that the top pages
move through the day as real ones do."""

from __future__ import annotations

import gzip
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

from conftest import REAL_PREFIX, Mirror


def scaled_hour(lines: list[bytes], hour_of_day: int, seed: int) -> bytes:
    rng = random.Random(seed)
    cycle = 1 + 0.6 * math.sin((hour_of_day - 9) / 24 * 2 * math.pi)
    out = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) != 4 or not fields[2].isdigit():
            continue
        count = round(int(fields[2]) * cycle * rng.lognormvariate(0, 0.35))
        if count:
            out.append(b" ".join((fields[0], fields[1], str(count).encode(), b"0")))
    return b"\n".join(out) + b"\n"


def add_real_day(mirror: Mirror, first_hour: datetime, hours: int = 24) -> None:
    lines = REAL_PREFIX.read_bytes().splitlines()
    for offset in range(hours):
        hour = first_hour + timedelta(hours=offset)
        path: Path = mirror.root / f".hour-{offset}.gz"
        path.write_bytes(gzip.compress(scaled_hour(lines, hour.hour, seed=offset), compresslevel=1, mtime=0))
        mirror.add(hour, path)
        path.unlink()
