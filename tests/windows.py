"""Hourly page totals built to trip a window that sums only some pages (test_windows.py,
test_spark.py): the page that wins a window may never be among any hour's most viewed."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wikitop.model import TOTALS_SCHEMA

Hours = list[dict[tuple[str, str], int]]

HOURS = 20
# The lists these hours are built for: a top 3. Their blacklist, as the file's lines.
TOP = 3
BLACKLIST_LINES = b"bl.x Hot_1\nbl.x Hot_2\nbl.x Hot 3\n"


def tricky_hours() -> Hours:
    """20 hours of pages, per domain code:

    - steady.x: 5 spikes of 1000 views in one hour each and 80 fillers of 70 views in one
      hour each fill the hours' busiest rows, while Steady (60 views an hour, 1200 in all)
      wins, At_bound (50 an hour: 1000, the seeds' third sum exactly) ties the spikes and
      Below (49 an hour, 980) stays out;
    - bl.x: blacklisted pages of 5000 views (one written %-encoded) lead the hours; a bound
      taken before the blacklist would drop Steady (100 an hour, 2000, first);
    - dense.x: 61 pages of 1000 views in one hour each are the seeds, a single distinct
      sum; with ties 'dense' that is no full list, and Slow (40 an hour, 800) comes second;
    - tied.x: Top (100 views in one hour), Second and Third (99 and 98, then 1 and 2 more in
      hours whose rows are not among the seeds) have three distinct seed sums but end tied
      at 100; with ties 'dense', Low (4 an hour, 80, never a seed) comes second, then 57
      fillers of 60 views in one hour each;
    - small.x: two pages, fewer than a full list; zero.x: pages of 0 views.
    """
    hours: Hours = [defaultdict(int) for _ in range(HOURS)]
    for h in range(HOURS):
        hours[h]["steady.x", "Steady"] = 60
        hours[h]["steady.x", "At_bound"] = 50
        hours[h]["steady.x", "Below"] = 49
        hours[h]["bl.x", "Steady"] = 100
        hours[h]["zero.x", f"Zero_{h % 4}"] = 0
        hours[h]["dense.x", "Slow"] = 40
        for filler in range(4):
            hours[h]["steady.x", f"Filler_{h}_{filler}"] = 70
            hours[h]["bl.x", f"Filler_{h}_{filler}"] = 70
    for spike in range(5):
        hours[spike]["steady.x", f"Spike_{spike}"] = 1000
    for spike in range(3):
        hours[10 + spike]["bl.x", f"Spike_{spike}"] = 1500
    for spike in range(61):
        hours[spike % HOURS]["dense.x", f"Spike_{spike}"] = 1000
    hours[1]["bl.x", "Hot_1"] = 5000
    hours[2]["bl.x", "Hot_2"] = 5000
    hours[3]["bl.x", "Hot%5F3"] = 5000
    for h in range(HOURS):
        hours[h]["tied.x", "Low"] = 4
    hours[0]["tied.x", "Top"] = 100
    hours[0]["tied.x", "Second"] = 99
    hours[1]["tied.x", "Second"] = 1
    hours[0]["tied.x", "Third"] = 98
    hours[1]["tied.x", "Third"] = 1
    hours[2]["tied.x", "Third"] = 1
    for filler in range(57):
        hours[filler % HOURS]["tied.x", f"Filler_{filler}"] = 60
    hours[4]["small.x", "One"] = 7
    hours[5]["small.x", "Two"] = 3
    return hours


def random_hours(seed: int, hours: int) -> Hours:
    """Hours of heavy-tailed views over pages that come back from hour to hour, with ties."""
    rng = random.Random(seed)
    domains = [f"d{d}.x" for d in range(rng.randint(1, 6))]
    pages = {domain: [f"P{p}" for p in range(rng.randint(1, 120))] for domain in domains}
    window: Hours = []
    for _ in range(hours):
        hour: dict[tuple[str, str], int] = {}
        for domain in domains:
            for title in rng.sample(pages[domain], rng.randint(0, len(pages[domain]))):
                hour[domain, title] = int(rng.paretovariate(1.1)) - 1
        window.append(hour)
    return window


def write_hours(folder: Path, hours: Hours) -> list[Path]:
    """Each hour as the lake keeps it: one Parquet file, a page at most once, in no order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, hour in enumerate(hours):
        rows = list(hour.items())
        random.Random(number).shuffle(rows)
        table = pa.table(
            {
                "domain_code": [domain for (domain, _), _ in rows],
                "page_title": [title for (_, title), _ in rows],
                "views": [views for _, views in rows],
            },
            schema=TOTALS_SCHEMA,
        )
        path = folder / f"totals-{number:03d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def summed(hours: Hours) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for hour in hours:
        for pair, views in hour.items():
            totals[pair] += views
    return totals


MAX_VIEWS = 2**63 - 1


def hours_near_64_bits() -> Hours:
    """Two hours whose busiest page ends at exactly 2^63-1 views, so that views * hours pass
    2^63-1 while every total fits; a page of 0 views and one that never leads follow."""
    return [
        {("big.x", "Max"): 2**62, ("big.x", "Zero"): 0, ("big.x", "Small"): 5},
        {("big.x", "Max"): 2**62 - 1, ("big.x", "Small"): 1},
    ]


def hours_past_64_bits() -> Hours:
    """Two hours in which one page's views add up to 2^63 and another's fit."""
    return [{("big.x", "Past"): 2**62, ("big.x", "Fits"): 2**62}, {("big.x", "Past"): 2**62, ("big.x", "Fits"): 7}]
