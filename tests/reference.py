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

import fnmatch
import functools
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


# Noise controls and whole projects (--exclude-noise, --namespace main, --min-views, --exclude,
# --group project), from docs/data.md's domain-code rules and the shipped data files, read as
# plain tables.

DATA_DIR = Path(__file__).parent.parent / "src" / "wikitop" / "data"
PROJECT_CSV_HEADER = ["project", "page_title", "views", "mobile_share", "rank"]
_PROJECT_OF_SUFFIX = {
    None: "wikipedia", "b": "wikibooks", "d": "wiktionary", "f": "wikimediafoundation", "m": "wikimedia",
    "n": "wikinews", "q": "wikiquote", "s": "wikisource", "v": "wikiversity", "voy": "wikivoyage",
    "w": "mediawiki", "wd": "wikidata",
}  # fmt: skip
# wikimedia.org sites whose desktop code is NAME.m (not a mobile Wikipedia).
_WIKIMEDIA_ORG = {
    "advisory", "api", "auth", "beta", "board", "chapcom", "checkuser", "collab", "commons", "donate",
    "foundation", "incubator", "login", "meta", "office", "otrs-wiki", "outreach", "quality", "species",
    "steward", "strategy", "test-commons", "usability", "vote", "wikitech",
}  # fmt: skip
_CODE = re.compile(r"^(?P<label>[^.]+)(?:\.(?P<access>m|zero))?(?:\.(?P<suffix>[^.]+))?$")


def project_of(domain_code: str) -> tuple[str, bool]:
    """(project, mobile) of a domain code: label, optional .m/.zero, optional suffix."""
    if re.fullmatch(r"[^.]+\.m", domain_code):
        label = domain_code[:-2]
        projects = {project for _, project, _ in _data_table("wikis.tsv")}
        chapter = f"{label}.wikimedia" in projects and f"{label}.wikipedia" not in projects
        if label in _WIKIMEDIA_ORG or label.startswith("wikimania") or chapter:
            return f"{label}.wikimedia", False
        return f"{label}.wikipedia", True
    match = _CODE.match(domain_code)
    if match is None or match["suffix"] not in _PROJECT_OF_SUFFIX:
        return domain_code, False
    label, mobile = match["label"], match["access"] is not None
    if match["suffix"] is None and match["access"] == "zero":
        return f"{label}.wikipedia", True
    if label == "m" and match["suffix"] in ("wd", "w") and not mobile:
        label, mobile = "www", True
    return f"{label}.{_PROJECT_OF_SUFFIX[match['suffix']]}", mobile


@functools.cache
def _data_table(name: str) -> list[list[str]]:
    rows = []
    for line in (DATA_DIR / name).read_text(encoding="utf-8").split("\n"):
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def _wiki(domain_code: str) -> tuple[str, str] | None:
    project, _ = project_of(domain_code)
    return next(((wiki, language) for wiki, listed, language in _data_table("wikis.tsv") if listed == project), None)


@functools.cache
def main_page_titles(domain_code: str) -> set[str]:
    """Main_Page, and the wiki's own main page."""
    wiki = _wiki(domain_code)
    own = {title for name, title, _ in _data_table("main_pages.tsv") if wiki and name == wiki[0]}
    return {"Main_Page"} | own


@functools.cache
def namespace_prefixes(domain_code: str, only_special: bool) -> set[str]:
    """The wiki's namespace names, lowercased (MediaWiki compares them case-insensitively)."""
    wiki = _wiki(domain_code)
    scopes = {"*"} | ({wiki[0], "lang:" + wiki[1]} if wiki else set())
    return {name.lower() for scope, namespace, name in _data_table("namespaces.tsv")
            if scope in scopes and (namespace == "-1" or not only_special)}


def is_left_out(domain_code: str, title: str, exclude_noise=False, namespace="all", exclude=()) -> bool:
    prefix = title.split(":", 1)[0] if ":" in title[1:] else None
    if exclude_noise and (title == "-" or title in main_page_titles(domain_code)):
        return True
    if prefix is not None and (exclude_noise or namespace == "main"):
        if prefix.lower() in namespace_prefixes(domain_code, only_special=namespace != "main"):
            return True
    return any(fnmatch.fnmatchcase(title, pattern) for pattern in exclude)


def listed_rows(
    totals: dict[tuple[str, str], int], blacklist: set[tuple[str, str]], top: int = 25, ties: str = "rank",
    exclude_noise=False, namespace="all", min_views=0, exclude=(), group="domain",
) -> list[tuple]:
    """The published rows with the noise controls and grouping applied: pages left out
    first, then (grouped) a project's codes summed, the blacklist applied to the project's
    page when one of its codes lists it, pages under min_views dropped, then ranked."""
    kept: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (domain_code, title), views in totals.items():
        if is_left_out(domain_code, title, exclude_noise, namespace, exclude):
            continue
        key, mobile = (project_of(domain_code) if group == "project" else (domain_code, False))
        kept[key, title][0] += views
        kept[key, title][1] += views if mobile else 0
    if group == "project":
        blacklist = {(project_of(domain_code)[0], title) for domain_code, title in blacklist}
    sums = {pair: views for pair, (views, _) in kept.items() if views >= min_views}
    rows = top_pages(sums, blacklist, top=top, ties=ties)
    if group != "project":
        return rows
    return [(key, title, views, kept[key, title][1] / views if views else None, rank)
            for key, title, views, rank in rows]


def read_totals(paths) -> dict[tuple[str, str], int]:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for path in paths:
        for pair, views in read_pageviews(path)[0].items():
            totals[pair] += views
    return totals
