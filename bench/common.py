"""Helpers shared by the benchmarks: timing commands with peak memory, medians, test data."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
sys.path.insert(0, str(ROOT / "src"))

from wikitop.hours import dump_relative_path  # noqa: E402
from wikitop.synthetic import generate_hour  # noqa: E402

FIRST_HOUR = datetime(2020, 1, 22, tzinfo=UTC)


def measure(command: list[str], **kwargs) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of one command run in a child process.

    The command is wrapped in a fresh Python process so that ru_maxrss of its children
    belongs to this command alone.
    """
    wrapper = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
        "e = time.perf_counter() - t;"
        "print(e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
    )
    output = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True,
                            check=True, **kwargs).stdout.split()
    seconds, peak_kib, returncode = float(output[0]), int(output[1]), int(output[2])
    if returncode != 0:
        raise SystemExit(f"benchmark command failed ({returncode}): {' '.join(command)}")
    return seconds, peak_kib * 1024


def median(values) -> float:
    return statistics.median(values)


def mirror_hours(root: Path, hours: int, lines: int, blacklist: Path | None = None) -> list[Path]:
    """A mirror directory holding `hours` generated hours from FIRST_HOUR on (made once, reused)."""
    paths = []
    for i in range(hours):
        hour = FIRST_HOUR + timedelta(hours=i)
        path = root / dump_relative_path(hour)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            temporary = path.with_suffix(".tmp")
            generate_hour(temporary, lines=lines, seed=i, blacklist_path=blacklist)
            temporary.rename(path)
            print(f"generated {path.name} ({lines:,} lines) in {time.perf_counter() - started:.0f}s", flush=True)
        paths.append(path)
    return paths


def gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def shell_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
