"""What the cache holds, and pruning it.

The cache directory holds two kinds of files: downloaded dumps under
``pageviews/`` (each with a JSON record written once it was verified, and the
``.part`` files of downloads still to be resumed, one per byte range for a
download in ranges) and the hourly page totals under ``totals/`` (Parquet,
written by days and windows, cheap to keep and costly to rebuild without the
dumps).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from wikitop.fetch import check_cached, read_record, record_is_current, sidecar_path
from wikitop.hours import ONE_HOUR

KINDS = ("dumps", "totals")

_DUMP_NAME = re.compile(r"pageviews-(\d{8})-(\d{2})0000\.gz(\.part(?:-\d+-\d+-of-\d+)?)?")
_TOTALS_NAME = re.compile(r"totals-(\d{8})-(\d{2})\.parquet")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?")
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


@dataclass(frozen=True)
class CacheEntry:
    """One cached file. ``state``: verified, unverified or partial for dumps; kept for totals."""

    kind: str
    path: Path
    size: int
    modified: float
    hour: datetime | None
    state: str

    def extra_files(self) -> list[Path]:
        return [sidecar_path(self.path)] if self.kind == "dumps" else []


def _hour_of(match: re.Match, stamped_at_end: bool) -> datetime:
    moment = datetime.strptime(match[1] + match[2], "%Y%m%d%H").replace(tzinfo=UTC)
    return moment - ONE_HOUR if stamped_at_end else moment


def scan(cache_dir: Path, kinds: Iterable[str] = KINDS) -> list[CacheEntry]:
    """Every dump and totals file of the cache, oldest first (by modification time)."""
    cache_dir = Path(cache_dir)
    entries = []
    if "dumps" in kinds:
        for path in sorted((cache_dir / "pageviews").rglob("pageviews-*.gz*")):
            if (match := _DUMP_NAME.fullmatch(path.name)) and path.is_file():
                entries.append(_dump_entry(path, match))
    if "totals" in kinds:
        for path in sorted((cache_dir / "totals").rglob("totals-*.parquet")):
            if (match := _TOTALS_NAME.fullmatch(path.name)) and path.is_file():
                stat = path.stat()
                entries.append(CacheEntry("totals", path, stat.st_size, stat.st_mtime, _hour_of(match, False), "kept"))
    return sorted(entries, key=lambda entry: entry.modified)


def _dump_entry(path: Path, match: re.Match) -> CacheEntry:
    stat = path.stat()
    size = stat.st_size
    if match[3]:
        state = "partial"
    else:
        state = "verified" if record_is_current(path, read_record(path)) else "unverified"
        if sidecar_path(path).exists():
            size += sidecar_path(path).stat().st_size
    return CacheEntry("dumps", path, size, stat.st_mtime, _hour_of(match, True), state)


def verify(entry: CacheEntry) -> CacheEntry:
    """Check a dump's bytes now (digest, or full gzip check when unrecorded); a bad one is deleted."""
    if entry.kind != "dumps" or entry.state == "partial":
        return entry
    if check_cached(entry.path) is None:
        return CacheEntry(entry.kind, entry.path, 0, entry.modified, entry.hour, "corrupt, deleted")
    sidecar = sidecar_path(entry.path)
    size = entry.path.stat().st_size + sidecar.stat().st_size
    return CacheEntry(entry.kind, entry.path, size, entry.modified, entry.hour, "verified")


def select_for_pruning(
    entries: list[CacheEntry], older_than: float | None = None, max_size: int | None = None, now: float | None = None
) -> list[CacheEntry]:
    """Entries to delete: those modified more than ``older_than`` seconds ago, then the oldest
    of the rest until the remainder fits in ``max_size`` bytes."""
    now = time.time() if now is None else now
    ordered = sorted(entries, key=lambda entry: entry.modified)
    doomed = [e for e in ordered if older_than is not None and now - e.modified > older_than]
    if max_size is not None:
        kept = [e for e in ordered if e not in doomed]
        remaining = sum(e.size for e in kept)
        for entry in kept:
            if remaining <= max_size:
                break
            doomed.append(entry)
            remaining -= entry.size
    return doomed


def remove(entry: CacheEntry) -> None:
    for path in (entry.path, *entry.extra_files()):
        path.unlink(missing_ok=True)
    for folder in (entry.path.parent, entry.path.parent.parent):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break


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
