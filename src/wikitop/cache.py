"""What the cache holds, and pruning it.

The cache directory holds two kinds of files: downloaded dumps under
``pageviews/`` (each with a JSON record written once it was verified, and the
``.part`` files of downloads still to be resumed, one per byte range for a
download in ranges) and, unless ``--lake`` puts it elsewhere, the pageviews lake
under ``lake/`` (``wikitop.lake``: an hour's page totals as Parquet, cheap to keep
and costly to rebuild without the dumps), whose hours are its "totals": a
partition with its manifest is kept; one without (a write killed midway) is
temporary. A dump is guarded by the lock of the file it is or becomes, an hour of
the lake by the lock of its manifest (``wikitop.locks``): pruning skips what a live
run holds, removes a partition's manifest before its data, then, still holding it,
the lock file, and last the folders left empty. Runs that died also leave the
temporary files of atomic writes (``wikitop.files``) of dumps' records and of parsed
blacklists (under ``blacklists/``): pruning deletes them once a day old, whatever the
kinds pruned. Pruning also removes the DuckDB spill folders of runs killed outright
(``wikitop.rank.spill``), which are in the system's temporary folder, not the cache.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wikitop.files import target_of_temporary
from wikitop.hours import dump_file_name, parse_dump_file_name
from wikitop.lake import DATASET, default_lake, hour_of_partition
from wikitop.locks import LOCK_SUFFIX, try_exclusive
from wikitop.rank.spill import dead_spill_folders, remove_dead_spill_folders
from wikitop.source.fetch import check_cached, read_record, record_is_current, sidecar_path
from wikitop.storage import MARKER, marker_record
from wikitop.units import format_size

KINDS = ("dumps", "totals")
# The kind of the leftovers of atomic writes, which no option selects: they are always pruned once old.
TEMPORARY_FILE = "temporary file"
# Partial downloads, lake hours without a manifest and temporary files, once this old, are left by runs that died.
TEMPORARY_STATES = frozenset({"partial", "temporary"})
TEMPORARY_MAX_AGE_SECONDS = 24 * 3600

# What follows the dump's name in the names of a download's pieces (wikitop.source.download).
_PARTIAL_SUFFIX = re.compile(r"\.part(?:-\d+-\d+-of-\d+)?")


@dataclass(frozen=True)
class CacheEntry:
    """One cached file, or a lake's hour (its partition folder). ``state``: verified, unverified
    or partial for dumps; kept or temporary for totals."""

    kind: str
    path: Path
    size: int
    modified: float
    hour: datetime | None
    state: str

    def extra_files(self) -> list[Path]:
        return [sidecar_path(self.path)] if self.kind == "dumps" else []

    @property
    def target(self) -> Path:
        """The file this one is or becomes (a lake hour: its manifest), whose lock guards it."""
        if self.kind == "totals":
            return self.path / MARKER
        if self.state == "partial":
            return self.path.with_name(dump_file_name(self.hour))
        return self.path


def scan(cache_dir: Path, kinds: Iterable[str] = KINDS) -> list[CacheEntry]:
    """Every dump and totals file of the cache, oldest first (by modification time)."""
    cache_dir = Path(cache_dir)
    entries = []
    if "dumps" in kinds:
        for path in sorted((cache_dir / "pageviews").rglob("pageviews-*.gz*")):
            parsed = parse_dump_file_name(path.name)
            if parsed and (not parsed[1] or _PARTIAL_SUFFIX.fullmatch(parsed[1])) and path.is_file():
                entries.append(_dump_entry(path, *parsed))
    if "totals" in kinds:
        for folder in sorted((default_lake(cache_dir) / DATASET).glob("year=*/month=*/day=*/hour=*")):
            if (entry := _lake_hour_entry(folder)) is not None:
                entries.append(entry)
    return sorted(entries, key=lambda entry: entry.modified)


def stale_temporary_files(cache_dir: Path) -> list[CacheEntry]:
    """The temporary files of dumps' records and of parsed blacklists older than a day."""
    now = time.time()
    cache_dir = Path(cache_dir)
    found = []
    for path in (*(cache_dir / "pageviews").rglob(".*.json.*.tmp"), *(cache_dir / "blacklists").glob(".*.tmp")):
        try:
            stat = path.stat()
        except FileNotFoundError:  # renamed by its writer meanwhile
            continue
        if target_of_temporary(path.name) and path.is_file() and now - stat.st_mtime > TEMPORARY_MAX_AGE_SECONDS:
            found.append(CacheEntry(TEMPORARY_FILE, path, stat.st_size, stat.st_mtime, None, "temporary"))
    return sorted(found, key=lambda entry: entry.modified)


def _lake_hour_entry(folder: Path) -> CacheEntry | None:
    """A partition of the default lake: kept when its manifest names a file it holds."""
    hour = hour_of_partition(folder.as_posix())
    files = [path for path in folder.iterdir() if path.is_file() and not path.name.endswith(LOCK_SUFFIX)]
    if hour is None or not files:
        return None
    stats = [path.stat() for path in files]
    manifest = folder / MARKER
    record = marker_record(manifest.read_bytes()) if manifest.exists() else None
    kept = record is not None and (folder / record["file"]).is_file()
    return CacheEntry("totals", folder, sum(s.st_size for s in stats), max(s.st_mtime for s in stats), hour,
                      "kept" if kept else "temporary")


def _dump_entry(path: Path, hour: datetime, suffix: str) -> CacheEntry:
    stat = path.stat()
    size = stat.st_size
    if suffix:
        state = "partial"
    else:
        state = "verified" if record_is_current(path, read_record(path)) else "unverified"
        if sidecar_path(path).exists():
            size += sidecar_path(path).stat().st_size
    return CacheEntry("dumps", path, size, stat.st_mtime, hour, state)


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
    """Entries to delete: those modified more than ``older_than`` seconds ago and temporary
    ones older than a day, then the oldest of the rest until the remainder fits in
    ``max_size`` bytes."""
    now = time.time() if now is None else now

    def expired(entry: CacheEntry) -> bool:
        age = now - entry.modified
        if entry.state in TEMPORARY_STATES and age > TEMPORARY_MAX_AGE_SECONDS:
            return True
        return older_than is not None and age > older_than

    ordered = sorted(entries, key=lambda entry: entry.modified)
    doomed = [e for e in ordered if expired(e)]
    if max_size is not None:
        chosen = set(doomed)
        kept = [e for e in ordered if e not in chosen]
        remaining = sum(e.size for e in kept)
        for entry in kept:
            if remaining <= max_size:
                break
            doomed.append(entry)
            remaining -= entry.size
    return doomed


def prune(doomed: list[CacheEntry]) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Delete the entries no run holds; returns those deleted and those kept because in use."""
    deleted, in_use = [], []
    for entry in doomed:
        lock = try_exclusive(entry.target)
        if lock is None:
            in_use.append(entry)
            continue
        try:
            remove(entry)
            lock.delete()
        finally:
            lock.release()
        _remove_empty_folders(entry)
        deleted.append(entry)
    return deleted, in_use


@dataclass(frozen=True)
class Pruning:
    """What pruning deleted (or, in a dry run, would delete; stale temporary files first), kept
    because a run holds it, and left; and the spill folders of dead runs it removed (would remove)."""

    deleted: list[CacheEntry]
    in_use: list[CacheEntry]
    kept: list[CacheEntry]
    spill_folders: list[Path]


def prune_cache(cache_dir: Path, kinds: Iterable[str] = KINDS, older_than: float | None = None,
                max_size: int | None = None, dry_run: bool = False) -> Pruning:
    """Select the entries of ``kinds`` to prune (``select_for_pruning``) and, unless a dry run, delete
    them, the stale temporary files and the spill folders of dead runs."""
    temporary_files = stale_temporary_files(cache_dir)
    entries = scan(cache_dir, kinds)
    doomed = select_for_pruning(entries, older_than, max_size)
    if dry_run:
        deleted, in_use, spill_folders = doomed, [], dead_spill_folders()
    else:
        for entry in temporary_files:
            entry.path.unlink(missing_ok=True)
        deleted, in_use = prune(doomed)
        spill_folders = remove_dead_spill_folders()
    gone = set(deleted)
    return Pruning(temporary_files + deleted, in_use, [entry for entry in entries if entry not in gone], spill_folders)


def describe(entries: Iterable[CacheEntry]) -> str:
    """How many files of each kind, their size, and how many dumps are not verified."""
    entries = list(entries)
    parts = []
    for kind in KINDS:
        of_kind = [e for e in entries if e.kind == kind]
        unverified = sum(e.state != "verified" for e in of_kind) if kind == "dumps" else 0
        note = f", {unverified} not verified" if unverified else ""
        parts.append(f"{len(of_kind)} {kind} ({format_size(sum(e.size for e in of_kind))}{note})")
    return ", ".join(parts)


def remove(entry: CacheEntry) -> None:
    """The entry's files, a lake hour's manifest first, so that a partition is never seen
    with a manifest and no data; its lock file is its pruner's to delete (``prune``)."""
    if entry.kind == "totals":
        (entry.path / MARKER).unlink(missing_ok=True)
        for path in entry.path.iterdir():
            if path.is_file() and not path.name.endswith(LOCK_SUFFIX):
                path.unlink(missing_ok=True)
        return
    for path in (entry.path, *entry.extra_files()):
        path.unlink(missing_ok=True)


def _remove_empty_folders(entry: CacheEntry) -> None:
    """The entry's folder and those above it up to the cache's top folders, while empty."""
    folders = (entry.path, *entry.path.parents[:3]) if entry.kind == "totals" else entry.path.parents[:2]
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break
