"""Which pages a list holds and what it ranks them under: noise controls and whole projects.

A domain code names one wiki's desktop or mobile site (docs/data.md): its first label, then
``.m`` (or ``.zero``, until 2019-05) for mobile, then the project's suffix. ``--group project``
sums a wiki's codes under its project name (``en`` and ``en.m`` as ``en.wikipedia``); the noise
controls leave out the ``-`` title, main pages, special pages and other namespaces, by the
names each wiki gives them (``src/wikitop/data/``: wikis.tsv, main_pages.tsv and namespaces.tsv,
made by scripts/make_wiki_data.py); a namespace name matches case-insensitively, as in MediaWiki.

The engines compute these per domain code of their input (a few thousand at most) here, in
Python, and join them as small relations in the shared SQL: ``domain_projects(domain_code,
project, mobile)``, ``excluded_titles(domain_code, page_title)`` and
``excluded_prefixes(domain_code, prefix)``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from wikitop.rank.blacklist import Blacklist

GROUPS = ("domain", "project")
NAMESPACES = ("all", "main")

# The project suffix of a domain code, and the family of wikis it names.
FAMILIES = {
    "": "wikipedia",
    "b": "wikibooks",
    "d": "wiktionary",
    "f": "wikimediafoundation",
    "m": "wikimedia",
    "n": "wikinews",
    "q": "wikiquote",
    "s": "wikisource",
    "v": "wikiversity",
    "voy": "wikivoyage",
    "w": "mediawiki",
    "wd": "wikidata",
}
MOBILE_LABELS = ("m", "zero")
# Sites under wikimedia.org whose desktop code, X.m, would otherwise read as the mobile
# Wikipedia of a language X. A code such as ar.m stays the Arabic Wikipedia's mobile site,
# though Wikimedia Argentina's desktop site (ar.wikimedia.org) counts under it too.
WIKIMEDIA_SITES = frozenset(
    """advisory api auth beta board chapcom checkuser collab commons donate foundation
    incubator login meta office otrs-wiki outreach quality species steward strategy test-commons
    usability vote wikimania wikitech""".split()
)
# A page title that stands for no page (the dump's unknown title), and the main page that
# MediaWiki creates and most wikis keep, at least as a redirect to their own.
UNKNOWN_TITLE = "-"
DEFAULT_MAIN_PAGE = "Main_Page"
SPECIAL = -1  # MediaWiki's number of the Special namespace


def project_of(domain_code: str) -> tuple[str, bool]:
    """The project a domain code counts (``en.m`` -> ``en.wikipedia``, ``commons.m.m`` ->
    ``commons.wikimedia``, ``m.wd`` -> ``www.wikidata``) and whether it counts mobile views.
    A code these rules do not cover is a project of its own, desktop."""
    first, *rest = domain_code.split(".")
    mobile = False
    if len(rest) == 2 and rest[0] in MOBILE_LABELS:
        mobile, rest = True, rest[1:]
    elif len(rest) == 1 and rest[0] in MOBILE_LABELS and not (rest[0] == "m" and _is_wikimedia_site(first)):
        mobile, rest = True, []
    suffix = rest[0] if len(rest) == 1 else "" if not rest else None
    if not first or suffix not in FAMILIES:
        return domain_code, False
    if first == "m" and suffix in ("wd", "w"):  # hosts without a language label: www and m
        first, mobile = "www", True
    return f"{first}.{FAMILIES[suffix]}", mobile


def _is_wikimedia_site(label: str) -> bool:
    """Whether X.m is X.wikimedia.org's desktop code: a listed site, or a wiki there (a
    chapter's, such as ge.wikimedia.org) where no Wikipedia has that label."""
    listed = wikis()
    return (label in WIKIMEDIA_SITES or label.startswith("wikimania")
            or (f"{label}.wikimedia" in listed and f"{label}.wikipedia" not in listed))


def _data_rows(name: str) -> list[list[str]]:
    """The tab-separated rows of a shipped data file; # comments and blank lines skipped."""
    text = resources.files("wikitop.data").joinpath(name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.cache
def wikis() -> dict[str, tuple[str, str]]:
    """Each wiki's (database name, content language), by project name (``en.wikipedia``)."""
    return {project: (wiki, language) for wiki, project, language in _data_rows("wikis.tsv")}


@functools.cache
def main_pages() -> dict[str, set[str]]:
    """Each wiki's main pages (it may have renamed it), by database name."""
    pages: dict[str, set[str]] = {}
    for wiki, title, _source in _data_rows("main_pages.tsv"):
        pages.setdefault(wiki, set()).add(title)
    return pages


@functools.cache
def namespace_names() -> dict[str, list[tuple[int, str]]]:
    """(namespace number, name) pairs by scope: ``*`` (every wiki), ``lang:CODE`` (the wikis
    of a content language) or a wiki's database name."""
    names: dict[str, list[tuple[int, str]]] = {}
    for scope, namespace, name in _data_rows("namespaces.tsv"):
        names.setdefault(scope, []).append((int(namespace), name))
    return names


def wiki_of(domain_code: str) -> tuple[str, str] | None:
    """The (database name, content language) of a domain code's wiki, None if not listed."""
    return wikis().get(project_of(domain_code)[0])


def main_page_titles(domain_code: str) -> set[str]:
    """The main pages of a domain code's wiki (main_pages.tsv), and Main_Page."""
    wiki = wiki_of(domain_code)
    return {DEFAULT_MAIN_PAGE} | (main_pages().get(wiki[0], set()) if wiki else set())


def wiki_namespaces(domain_code: str) -> set[tuple[int, str]]:
    """The (namespace number, name) pairs of the wiki of a domain code: MediaWiki's canonical
    names, those of its content language and its own; canonical names only for a wiki not listed."""
    wiki = wiki_of(domain_code)
    names = namespace_names()
    scopes = ("*", f"lang:{wiki[1]}", wiki[0]) if wiki else ("*",)
    return {pair for scope in scopes for pair in names.get(scope, ())}


@dataclass(frozen=True)
class Listing:
    """Which pages the lists hold and what they rank them under; the default lists every
    page per domain code, as wikitop always did."""

    exclude_noise: bool = False  # the '-' title, main pages and special pages
    namespace: str = "all"  # 'main': articles only
    min_views: int = 0  # a page needs this many views (in the whole period) to be listed
    exclude: tuple[str, ...] = ()  # glob patterns on titles
    group: str = "domain"  # 'project': desktop and mobile codes of a wiki summed

    def __post_init__(self):
        if self.group not in GROUPS:
            raise ValueError(f"group must be one of {', '.join(GROUPS)}, not {self.group!r}")
        if self.namespace not in NAMESPACES:
            raise ValueError(f"namespace must be one of {', '.join(NAMESPACES)}, not {self.namespace!r}")
        if not isinstance(self.min_views, int) or isinstance(self.min_views, bool) or self.min_views < 0:
            raise ValueError(f"min_views must be a non-negative integer, not {self.min_views!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))
        for pattern in self.exclude:
            if not pattern:
                raise ValueError("an --exclude pattern cannot be empty")
            glob_regex(pattern)

    @property
    def grouped(self) -> bool:
        return self.group == "project"

    @property
    def selects_pages(self) -> bool:
        """Whether pages are left out or regrouped before ranking (--min-views alone is
        applied by the ranking itself)."""
        return self.exclude_noise or self.namespace != "all" or bool(self.exclude) or self.grouped

    def params(self) -> dict:
        """The settings that differ from the default, for a result's parameters: a result
        made without any of them keeps the parameters it always had."""
        default = Listing()
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) != getattr(default, field.name)
        }

    def relations(self, domain_codes: Iterable[str]) -> dict[str, pa.Table]:
        """domain_projects, excluded_titles and excluded_prefixes for these domain codes."""
        import pyarrow as pa

        codes = sorted(set(domain_codes))
        projects = [project_of(code) for code in codes]
        if not self.grouped:
            projects = [(code, False) for code in codes]
        titles: list[tuple[str, str]] = []
        prefixes: list[tuple[str, str]] = []
        for code in codes:
            if self.exclude_noise:
                titles += [(code, title) for title in sorted({UNKNOWN_TITLE} | main_page_titles(code))]
            if self.exclude_noise or self.namespace == "main":
                every = self.namespace == "main"
                names = {name for namespace, name in wiki_namespaces(code) if every or namespace == SPECIAL}
                prefixes += [(code, name) for name in sorted(names)]
        return {
            "domain_projects": pa.table(
                {"domain_code": codes, "project": [p for p, _ in projects], "mobile": [m for _, m in projects]},
                schema=pa.schema([("domain_code", pa.string()), ("project", pa.string()), ("mobile", pa.bool_())]),
            ),
            "excluded_titles": _pairs(titles, ("domain_code", "page_title")),
            "excluded_prefixes": _pairs(prefixes, ("domain_code", "prefix")),
        }

    def rows_per_page_hour(self, domain_codes: Iterable[str]) -> int:
        """The most rows one page can have in an hour of the lists' relation: one per
        domain code, or per code of its project when grouped."""
        if not self.grouped:
            return 1
        codes: dict[str, int] = {}
        for code in set(domain_codes):
            project, _ = project_of(code)
            codes[project] = codes.get(project, 0) + 1
        return max(codes.values(), default=1)


def _pairs(rows: list[tuple[str, str]], names: tuple[str, str]) -> pa.Table:
    import pyarrow as pa

    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)},
                    schema=pa.schema([(name, pa.string()) for name in names]))


def project_blacklist(blacklist: Blacklist) -> Blacklist:
    """The blacklist over projects: a page of a project is left out when a pair of one of
    its domain codes lists it (the rows of a project are summed before they are ranked)."""
    import pyarrow as pa

    pairs = sorted({(project_of(code)[0], title) for code, title in blacklist.pairs})
    table = pa.table({"domain_code": [p for p, _ in pairs], "page_title": [t for _, t in pairs]},
                     schema=blacklist.table.schema)
    sha256 = hashlib.sha256(f"{blacklist.sha256} by project".encode()).hexdigest()
    return dataclasses.replace(blacklist, table=table, sha256=sha256)


def glob_regex(pattern: str) -> str:
    """A glob on a whole title (``*`` any text, ``?`` one character, ``[abc]``, ``[!abc]``) as
    a regular expression that RE2 (DuckDB) and Java (Spark) read alike: anchored with \\A and
    \\z, ``.`` matching line breaks too, every other character written as a hex escape so that
    no character is special to either engine or to SQL."""
    out = ["(?s)\\A"]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := _class_end(pattern, i)) is not None:
            body = pattern[i:end]
            negate = body.startswith("!")
            out.append("[" + ("^" if negate else "") + _class_body(body[negate:]) + "]")
            i = end + 1
        else:
            out.append(_hex_escape(char))
    out.append("\\z")
    return "".join(out)


def _class_end(pattern: str, start: int) -> int | None:
    """Where the ``]`` closing a class that opened before ``start`` is (a ``]`` first in the
    class, after an optional ``!``, is a member), or None: then ``[`` is a character."""
    i = start + (pattern[start : start + 1] == "!")
    i += pattern[i : i + 1] == "]"
    end = pattern.find("]", i)
    return None if end < 0 else end


def _class_body(body: str) -> str:
    """Members and ranges (``a-z``) of a glob class, each character hex-escaped."""
    parts = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            if body[i] > body[i + 2]:
                raise ValueError(f"the range {body[i:i + 3]!r} of an --exclude glob runs backwards")
            parts.append(_hex_escape(body[i]) + "-" + _hex_escape(body[i + 2]))
            i += 3
        else:
            parts.append(_hex_escape(body[i]))
            i += 1
    return "".join(parts)


def _hex_escape(char: str) -> str:
    return f"\\x{{{ord(char):X}}}"
