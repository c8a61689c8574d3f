"""The blacklist of (domain code, page title) pairs removed before ranking.

Its titles mix plain, percent-encoded and doubly percent-encoded spellings,
while dump titles are decoded, so both sides are compared in canonical form.
Arrow is imported by the functions that use it (see ``wikitop.engines.__getattr__``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    import pyarrow as pa

    from wikitop.download import Fetcher

DEFAULT_BLACKLIST = "builtin:blacklist_domains_and_pages"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
BLACKLIST_COLUMNS = ("domain_code", "page_title")


def canonical_title(title: str) -> str:
    """Spaces to ``_``, then percent-decode until nothing changes.

    A ``%`` not followed by two hex digits stays; a decoding step whose bytes
    are not valid UTF-8 is not applied, so the function never fails.
    """
    title = title.replace(" ", "_")
    while _PERCENT_ESCAPE.search(title):
        try:
            decoded = unquote_to_bytes(title).decode("utf-8").replace(" ", "_")
        except UnicodeDecodeError:
            break
        if decoded == title:
            break
        title = decoded
    return title


def canonical_titles(titles):
    """canonical_title over an Arrow array of titles, for the engines' vectorised UDFs;
    only titles with a percent escape are decoded one by one. Not annotated: DuckDB
    evaluates a UDF's annotations, and this module imports Arrow only where it is used."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(titles, pa.ChunkedArray):  # DuckDB passes one
        titles = titles.combine_chunks()
    underscored = pc.replace_substring(titles, " ", "_")
    escaped = pc.match_substring_regex(titles, _PERCENT_ESCAPE.pattern)
    if not pc.any(escaped).as_py():
        return underscored
    decoded = pa.array([canonical_title(title) for title in pc.filter(titles, escaped).to_pylist()], pa.string())
    return pc.replace_with_mask(underscored, escaped, decoded)


@dataclass
class Blacklist:
    """The distinct (domain_code, page_title) pairs, titles in canonical form, as the
    blacklist(domain_code, page_title) relation the engines read, in no particular order."""

    table: pa.Table
    source: str
    sha256: str
    lines: int
    skipped: Counter = field(default_factory=Counter)
    undecodable: int = 0

    @functools.cached_property
    def pairs(self) -> set[tuple[str, str]]:
        return set(zip(*(self.table.column(name).to_pylist() for name in BLACKLIST_COLUMNS)))

    def metadata(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "lines": self.lines,
            "entries": self.table.num_rows,
            "skipped": dict(sorted(self.skipped.items())),
            "kept_percent_encoded": self.undecodable,
        }


def _pairs_table(pairs: set[tuple[str, str]]) -> pa.Table:
    import pyarrow as pa

    domain_codes, titles = zip(*pairs) if pairs else ((), ())
    columns = [pa.array(domain_codes, pa.string()), pa.array(titles, pa.string())]
    return pa.table(columns, names=list(BLACKLIST_COLUMNS))


def parse_blacklist(raw: bytes, source: str) -> Blacklist:
    pairs: set[tuple[str, str]] = set()
    skipped: Counter = Counter()
    undecodable = 0
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for raw_line in lines:
        try:
            line = raw_line.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            skipped["invalid_utf8"] += 1
            continue
        domain_code, _, title = line.partition(" ")
        if not domain_code or not title:
            skipped["no_title"] += 1
            continue
        title = canonical_title(title)
        # Escapes whose bytes are not UTF-8 (legacy encodings) stay as written.
        undecodable += bool(_PERCENT_ESCAPE.search(title))
        pairs.add((domain_code, title))
    return Blacklist(
        table=_pairs_table(pairs),
        source=source,
        sha256=hashlib.sha256(raw).hexdigest(),
        lines=len(lines),
        skipped=skipped,
        undecodable=undecodable,
    )


def empty_blacklist() -> Blacklist:
    empty = hashlib.sha256(b"").hexdigest()
    return Blacklist(table=_pairs_table(set()), source="none", sha256=empty, lines=0)


def read_blacklist_bytes(location: str, fetcher: Callable[[], Fetcher] | None = None) -> bytes:
    """Bytes of the built-in list, a local path, an http(s) URL (fetched with the client
    that ``fetcher`` gives, by default a new one) or any fsspec URL."""
    if location.startswith("builtin:"):
        name = location.removeprefix("builtin:")
        return resources.files("wikitop.data").joinpath(name).read_bytes()
    if location.startswith(("http://", "https://")):
        from wikitop.download import Fetcher

        return (fetcher or Fetcher)().get_bytes(location)
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return handle.read()


def load_blacklist(
    location: str | None,
    fetcher: Callable[[], Fetcher] | None = None,
    cache_dir: Path | None = None,
    raw: bytes | None = None,
) -> Blacklist:
    """The blacklist at location (None: no blacklist), from its bytes ``raw`` if already read.

    Canonicalising 57,000 titles takes a second; with cache_dir the parsed list is kept
    there as an Arrow file under the digest of its bytes and reused.
    """
    import pyarrow as pa

    if location is None:
        return empty_blacklist()
    if raw is None:
        raw = read_blacklist_bytes(location, fetcher)
    if cache_dir is None:
        return parse_blacklist(raw, location)
    digest = hashlib.sha256(raw).hexdigest()
    cached = Path(cache_dir) / "blacklists" / f"{digest}.arrow"
    try:
        with pa.OSFile(str(cached)) as source:
            table = pa.ipc.open_file(source).read_all()
        record = json.loads(table.schema.metadata[b"wikitop"])
        return Blacklist(
            table=table.replace_schema_metadata(None),
            source=location,
            sha256=digest,
            lines=record["lines"],
            skipped=Counter(record["skipped"]),
            undecodable=record["undecodable"],
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        pass
    blacklist = parse_blacklist(raw, location)
    record = {"lines": blacklist.lines, "skipped": blacklist.skipped, "undecodable": blacklist.undecodable}
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    table = blacklist.table.replace_schema_metadata({"wikitop": json.dumps(record)})
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(temporary, cached)
    return blacklist
