"""The blacklist of (domain code, page title) pairs removed before ranking.

Its titles mix plain, percent-encoded and doubly percent-encoded spellings,
while dump titles are decoded, so both sides are compared in canonical form.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import unquote_to_bytes

DEFAULT_BLACKLIST = "builtin:blacklist_domains_and_pages"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


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


def needs_canonicalising(title: str) -> bool:
    """Cheap test: only titles with these characters can differ from their canonical form."""
    return "%" in title or " " in title


@dataclass
class Blacklist:
    pairs: set[tuple[str, str]]
    source: str
    sha256: str
    lines: int
    skipped: Counter = field(default_factory=Counter)
    undecodable: int = 0

    def metadata(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "lines": self.lines,
            "entries": len(self.pairs),
            "skipped": dict(sorted(self.skipped.items())),
            "kept_percent_encoded": self.undecodable,
        }


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
        pairs=pairs,
        source=source,
        sha256=hashlib.sha256(raw).hexdigest(),
        lines=len(lines),
        skipped=skipped,
        undecodable=undecodable,
    )


def empty_blacklist() -> Blacklist:
    return Blacklist(pairs=set(), source="none", sha256=hashlib.sha256(b"").hexdigest(), lines=0)


def read_blacklist_bytes(location: str, fetcher=None) -> bytes:
    """Bytes of the built-in list, a local path, an http(s) URL or any fsspec URL."""
    if location.startswith("builtin:"):
        name = location.removeprefix("builtin:")
        return resources.files("wikitop.data").joinpath(name).read_bytes()
    if location.startswith(("http://", "https://")):
        from wikitop.fetch import Fetcher

        return (fetcher or Fetcher()).get_bytes(location)
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return handle.read()


def load_blacklist(location: str | None, fetcher=None, cache_dir: Path | None = None) -> Blacklist:
    """The blacklist at location (None: no blacklist).

    Canonicalising 57,000 titles takes a second; with cache_dir the parsed list is kept
    there under the digest of its bytes and reused.
    """
    if location is None:
        return empty_blacklist()
    raw = read_blacklist_bytes(location, fetcher)
    if cache_dir is None:
        return parse_blacklist(raw, location)
    digest = hashlib.sha256(raw).hexdigest()
    cached = Path(cache_dir) / "blacklists" / f"{digest}.json"
    try:
        record = json.loads(cached.read_text("utf-8"))
        return Blacklist(
            pairs={tuple(pair) for pair in record["pairs"]},
            source=location,
            sha256=digest,
            lines=record["lines"],
            skipped=Counter(record["skipped"]),
            undecodable=record["undecodable"],
        )
    except (OSError, ValueError, KeyError):
        pass
    blacklist = parse_blacklist(raw, location)
    record = {
        "pairs": sorted(blacklist.pairs),
        "lines": blacklist.lines,
        "skipped": blacklist.skipped,
        "undecodable": blacklist.undecodable,
    }
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, ensure_ascii=False), "utf-8")
    os.replace(temporary, cached)
    return blacklist
