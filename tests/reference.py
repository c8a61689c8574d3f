"""Plain-Python oracle for the whole wikitop computation.

Written from shared/DATA.md and the test brief only; it imports nothing from
``wikitop`` so that the SQL engine can be checked against it.

Rules in short:

* A line (bytes, split on ``\\n``) is good when it is valid UTF-8, has exactly
  four fields separated by single ASCII spaces, a non-empty domain code and a
  count of 1 to 18 ASCII digits. Bad lines are counted by kind, checked in this
  order: ``empty_line``, ``invalid_utf8``, ``empty_domain_code`` (the line
  starts with a space, whatever its field count), ``wrong_field_count``,
  ``negative_count`` (``-`` then digits), ``invalid_count``.
* A Spark-era quoted title (``"\\"Weird_Al\\"_Yankovic"``) is unquoted; any
  other title is taken as is.
* Blacklisted pairs are matched on canonical titles, then pages are ranked per
  domain code by total views with RANK(), DENSE_RANK() or ROW_NUMBER().
"""

from __future__ import annotations

import gzip
import re
from collections import Counter, defaultdict
from pathlib import Path

BAD_KINDS = (
    "empty_line",
    "invalid_utf8",
    "empty_domain_code",
    "wrong_field_count",
    "negative_count",
    "invalid_count",
)
CSV_HEADER = ["domain_code", "page_title", "views", "rank"]
TIE_RULES = ("rank", "dense", "row")

_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


class BadLine(ValueError):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def canonical_title(title: str) -> str:
    """Spaces to ``_``, then percent-decode until the string no longer changes.

    A ``%`` not followed by two hex digits stays. A decoding step whose bytes
    are not valid UTF-8 is not applied. Spaces produced by decoding (``%20``)
    also become ``_``, because a dump never holds a space in a title.
    """
    title = title.replace(" ", "_")
    while "%" in title:
        raw = _PERCENT_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), title.encode("utf-8"))
        try:
            decoded = raw.decode("utf-8").replace(" ", "_")
        except UnicodeDecodeError:
            break
        if decoded == title:
            break
        title = decoded
    return title


def unquote_spark_title(title: str) -> str:
    """Undo the quoting of Spark's CSV writer (dumps since 2023-02), else return the title."""
    if len(title) < 2 or title[0] != '"' or title[-1] != '"':
        return title
    inner = title[1:-1]
    escaped_quotes = inner.count('\\"')
    # Every quote of the inner part must be escaped, and there must be one.
    if escaped_quotes == 0 or inner.count('"') != escaped_quotes:
        return title
    return inner.replace('\\"', '"')


# Lines longer than this many bytes (without their line break) are bad lines: no real line
# comes near it, and the engines do not keep one in memory.
MAX_LINE_BYTES = 1 << 20


def _is_count(text: str) -> bool:
    """The plain decimal form of a non-negative 64-bit integer: digits, no leading zero."""
    return (
        text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")) and int(text) < 2**63
    )


def parse_line(raw: bytes) -> tuple[str, str, int]:
    """(domain_code, title, views) of a good line; raises BadLine with its kind otherwise."""
    if raw == b"":
        raise BadLine("empty_line")
    if len(raw) > MAX_LINE_BYTES:
        raise BadLine("line_too_long")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine("invalid_utf8") from None
    if line.startswith(" "):
        raise BadLine("empty_domain_code")
    fields = line.split(" ")
    if len(fields) != 4:
        raise BadLine("wrong_field_count")
    domain_code, title, count, _response_size = fields
    if not _is_count(count):
        if count.startswith("-") and _is_count(count[1:]) and count != "-0":
            raise BadLine("negative_count")
        raise BadLine("invalid_count")
    return domain_code, unquote_spark_title(title), int(count)


def _read_bytes(path) -> bytes:
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            return handle.read()
    return path.read_bytes()


def _split_lines(data: bytes) -> list[bytes]:
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines


def read_pageviews(path) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Views per (domain_code, title) of one file, and the number of bad lines by kind."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    bad: Counter = Counter()
    for raw in _split_lines(_read_bytes(path)):
        try:
            domain_code, title, views = parse_line(raw)
        except BadLine as bad_line:
            bad[bad_line.kind] += 1
            continue
        totals[domain_code, title] += views
    return dict(totals), dict(bad)


def load_blacklist(path) -> set[tuple[str, str]]:
    """(domain_code, canonical title) pairs; lines without a title or not UTF-8 are skipped."""
    pairs = set()
    for raw in _split_lines(Path(path).read_bytes()):
        try:
            line = raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            continue
        domain_code, space, title = line.partition(" ")
        if not space or not title:
            continue
        pairs.add((domain_code, canonical_title(title)))
    return pairs


def top_pages(
    totals: dict[tuple[str, str], int], blacklist: set[tuple[str, str]], top: int = 25, ties: str = "rank"
) -> list[tuple[str, str, int, int]]:
    """Rows (domain_code, title, views, rank) sorted by domain, views descending, title."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}")
    pages_by_domain: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (domain_code, title), views in totals.items():
        if (domain_code, canonical_title(title)) not in blacklist:
            pages_by_domain[domain_code].append((title, views))

    rows = []
    for domain_code in sorted(pages_by_domain):
        pages = sorted(pages_by_domain[domain_code], key=lambda page: (-page[1], page[0]))
        rank = dense_rank = 0
        previous_views = None
        for position, (title, views) in enumerate(pages, start=1):
            if views != previous_views:
                rank, dense_rank, previous_views = position, dense_rank + 1, views
            current = {"rank": rank, "dense": dense_rank, "row": position}[ties]
            if current > top:
                break
            rows.append((domain_code, title, views, current))
    return rows


def expected_csv_rows(path_or_paths, blacklist_path=None, top: int = 25, ties: str = "rank") -> list[list[str]]:
    """What ``list(csv.reader(...))`` of the published CSV must give, header included."""
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for path in paths:
        for pair, views in read_pageviews(path)[0].items():
            totals[pair] += views
    blacklist = load_blacklist(blacklist_path) if blacklist_path is not None else set()
    rows = top_pages(totals, blacklist, top=top, ties=ties)
    return [CSV_HEADER] + [[domain, title, str(views), str(rank)] for domain, title, views, rank in rows]
