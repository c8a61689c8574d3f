"""The blacklist of (domain code, page title) pairs removed before ranking.

Its titles mix plain, percent-encoded and doubly percent-encoded spellings,
while dump titles are decoded, so both sides are compared in canonical form.
Arrow is imported by the functions that use it (see ``wikitop.rank.__getattr__``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from wikitop.errors import WikitopError
from wikitop.files import write_atomically

if TYPE_CHECKING:
    import pyarrow as pa

    from wikitop.source.download import Fetcher

DEFAULT_BLACKLIST = "builtin:blacklist_domains_and_pages"
_GZIP_MAGIC = b"\x1f\x8b"
_PERCENT_ESCAPE = r"%[0-9A-Fa-f]{2}"
BLACKLIST_COLUMNS = ("domain_code", "page_title")


class BlacklistError(WikitopError):
    """The blacklist cannot be read, or holds no entry; the message names it and says why."""


def canonical_titles(titles):
    """The canonical form of each of an Arrow array of titles: spaces to ``_``, then
    percent-decoding until nothing changes. A ``%`` not followed by two hex digits stays;
    a decoding step whose bytes are not valid UTF-8 is not applied, so it never fails.

    The engines' vectorised UDF, and how the blacklist is read. Not annotated: DuckDB
    evaluates a UDF's annotations, and this module imports Arrow only where it is used."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(titles, pa.ChunkedArray):  # DuckDB passes one
        titles = titles.combine_chunks()
    titles = pc.replace_substring(titles, " ", "_")
    escaped = pc.fill_null(pc.match_substring_regex(titles, _PERCENT_ESCAPE), False)
    pending = np.flatnonzero(escaped.to_numpy(zero_copy_only=False))
    while pending.size:
        decoded, utf8 = _percent_decoded(titles.take(pending))
        applied = pending[utf8]
        decoded = pc.replace_substring(decoded.filter(utf8).cast(titles.type), " ", "_")
        mask = np.zeros(len(titles), bool)
        mask[applied] = True
        titles = pc.replace_with_mask(titles, pa.array(mask), decoded)
        still_escaped = pc.match_substring_regex(decoded, _PERCENT_ESCAPE)
        pending = applied[still_escaped.to_numpy(zero_copy_only=False)]
    return titles


def _percent_decoded(titles):
    """Each title (no nulls) with its %XX escapes turned into bytes, as binary, and a numpy
    mask of the titles whose decoded bytes are valid UTF-8. The bytes of all titles are
    decoded at once: an escape starts at a '%' followed by two hexadecimal digits of the
    same title, and escapes never overlap, since a hexadecimal digit is not a '%'."""
    import numpy as np
    import pyarrow as pa

    large = pa.types.is_large_string(titles.type)
    offset_type = np.int64 if large else np.int32
    _, offsets_buffer, data_buffer = titles.buffers()
    offsets = np.frombuffer(offsets_buffer, offset_type)[titles.offset : titles.offset + len(titles) + 1]
    data = np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    digits = _hex_digits()[data]
    starts = np.flatnonzero(data[:-2] == ord("%"))
    starts = starts[(digits[starts + 1] >= 0) & (digits[starts + 2] >= 0)]
    title_ends = offsets[np.searchsorted(offsets, starts, side="right")]
    starts = starts[starts + 2 < title_ends]
    decoded = data.copy()
    decoded[starts] = digits[starts + 1] * 16 + digits[starts + 2]
    dropped = np.zeros(len(data), bool)
    dropped[starts + 1] = dropped[starts + 2] = True
    dropped_before = np.concatenate(([0], np.cumsum(dropped)))
    new_offsets = (offsets - dropped_before[offsets]).astype(offset_type)
    binary = pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        len(titles),
        [None, pa.py_buffer(new_offsets), pa.py_buffer(decoded[~dropped])],
    )
    try:
        binary.cast(pa.large_string() if large else pa.string())
        return binary, np.ones(len(titles), bool)
    except pa.ArrowInvalid:
        return binary, np.array([_decodes_as_utf8(value) for value in binary.to_pylist()], bool)


@functools.cache
def _hex_digits():
    import numpy as np

    values = np.full(256, -1, np.int16)
    for digit in "0123456789abcdefABCDEF":
        values[ord(digit)] = int(digit, 16)
    return values


def _decodes_as_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


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


# Lowercase labels of letters and digits joined by dots or hyphens: en, en.m, zh-min-nan, commons.m.
_DOMAIN_CODE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
# A list where fewer lines than this share are valid pairs is something else (a program, an HTML page).
MIN_VALID_SHARE = 0.5


def _lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _entry(raw_line: bytes) -> tuple[str, str] | str:
    """A line's (domain code, title), or why it is skipped."""
    try:
        line = raw_line.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    domain_code, _, title = line.partition(" ")
    if not domain_code or not title:
        return "no_title"
    if not _DOMAIN_CODE.fullmatch(domain_code):
        return "bad_domain_code"
    return domain_code, title


def check_has_entries(raw: bytes, source: str) -> None:
    """Refuse what is not a list of pairs (an empty file, a program, an HTML error page):
    with it, a run would rank nearly every page while claiming to apply a blacklist."""
    lines = _lines(raw)
    valid = sum(isinstance(_entry(line), tuple) for line in lines)
    if not valid:
        raise BlacklistError(
            f"the blacklist {source} has no valid 'domain_code page_title' line among {len(lines)} lines"
        )
    if valid < MIN_VALID_SHARE * len(lines):
        raise BlacklistError(
            f"the blacklist {source} is not a list of 'domain_code page_title' lines: only {valid} of its "
            f"{len(lines)} lines are (domain codes are lowercase labels such as en or en.m)"
        )


def parse_blacklist(raw: bytes, source: str) -> Blacklist:
    import pyarrow as pa
    import pyarrow.compute as pc

    domain_codes: list[str] = []
    titles: list[str] = []
    skipped: Counter = Counter()
    lines = _lines(raw)
    for raw_line in lines:
        entry = _entry(raw_line)
        if isinstance(entry, str):
            skipped[entry] += 1
            continue
        domain_codes.append(entry[0])
        titles.append(entry[1])
    canonical = canonical_titles(pa.array(titles, pa.string()))
    # Escapes whose bytes are not UTF-8 (legacy encodings) stay as written.
    undecodable = pc.sum(pc.match_substring_regex(canonical, _PERCENT_ESCAPE)).as_py() or 0
    return Blacklist(
        table=_pairs_table(set(zip(domain_codes, canonical.to_pylist()))),
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
    """The text of the built-in list, a local path, an http(s) URL (fetched with the client
    that ``fetcher`` gives, by default a new one) or any fsspec URL, decompressed if it is
    gzipped (whatever its name); BlacklistError if it cannot be read or has no entry."""
    from wikitop.source.fetch import FetchError

    try:
        raw = _read_location(location, fetcher)
    except (FetchError, OSError, ValueError) as error:
        raise BlacklistError(f"cannot read the blacklist {location}: {' '.join(str(error).split())}") from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise BlacklistError(f"the blacklist {location} is not a readable gzip file: {error}") from None
    check_has_entries(raw, location)
    return raw


def _read_location(location: str, fetcher: Callable[[], Fetcher] | None) -> bytes:
    if location.startswith("builtin:"):
        name = location.removeprefix("builtin:")
        return resources.files("wikitop.data").joinpath(name).read_bytes()
    if location.startswith(("http://", "https://")):
        from wikitop.source.download import Fetcher

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

    Reading and canonicalising 57,000 lines takes about half a second; with cache_dir the
    parsed list is kept there as an Arrow file under the digest of its bytes and reused.
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
    table = blacklist.table.replace_schema_metadata({"wikitop": json.dumps(record)})

    def write(temporary: Path) -> None:
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    write_atomically(cached, write)
    return blacklist
