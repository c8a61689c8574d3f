import gzip
import hashlib
import random
import re
from pathlib import Path

import pyarrow as pa
import pytest

import reference
from conftest import HOUR, Mirror
from dumpserver import DumpServer
from wikitop.model import Period
from wikitop.pipeline import Wikitop
from wikitop.rank.blacklist import (
    DEFAULT_BLACKLIST,
    BlacklistError,
    canonical_titles,
    load_blacklist,
    parse_blacklist,
    read_blacklist_bytes,
)
from wikitop.settings import Settings

DATA = Path(__file__).parent / "data"


def canonical_title(title: str) -> str:
    [canonical] = canonical_titles(pa.array([title])).to_pylist()
    return canonical


def test_canonical_title_decodes_until_stable():
    assert canonical_title("%D0%91%D0%BE%D1%80%D0%B8%D1%81") == "Борис"
    assert canonical_title("%25D8%25A5") == "إ"  # doubly encoded
    assert canonical_title("Brian_\"Head\"_Welch") == 'Brian_"Head"_Welch'
    assert canonical_title("New York") == "New_York"
    assert canonical_title("100%") == "100%"
    assert canonical_title("50%_off") == "50%_off"
    assert canonical_title("A%2520B") == "A_B"


def test_escapes_that_are_not_utf8_stay_as_written():
    assert canonical_title("%E3%EB%B4%A8") == "%E3%EB%B4%A8"


@pytest.mark.parametrize("batch", [pa.array, lambda titles: pa.chunked_array([titles[:3], titles[3:]])])
def test_canonical_titles_of_a_batch_are_canonical_title_of_each(batch):
    titles = ["%D0%91%D0%BE", "New York", "plain", None, "100%", "a b%20c", "%E3%EB", "%25D8%25A5", "x_y"]
    expected = [None if title is None else reference.canonical_title(title) for title in titles]
    assert canonical_titles(batch(titles)).to_pylist() == expected
    assert canonical_titles(batch(["plain", "New York"])).to_pylist() == ["plain", "New_York"]


def random_titles(count: int, seed: int) -> list[str]:
    """Titles made of escapes of every kind: of UTF-8 and of other bytes, doubly encoded,
    of spaces, cut short at the end of a title, next to stray '%' signs and hex digits."""
    rng = random.Random(seed)
    parts = ["a", "_", " ", "é", "Б", "%", "%%", "4", "F", "%2", "%25", "%20", "%2520", "%41", "%e9", "%E9",
             "%FF", "%D0%91", "%d0%b1", "%25D0%2591", "%E2%82%AC", "%E2%82", "%C3", "%7", "%G1", "%0A", "%00"]
    return ["".join(rng.choices(parts, k=rng.randint(0, 8))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(3))
def test_canonical_titles_agree_with_the_reference_on_random_titles(seed):
    titles = random_titles(3000, seed)
    expected = [reference.canonical_title(title) for title in titles]
    assert canonical_titles(pa.array(titles)).to_pylist() == expected
    assert canonical_titles(pa.array(titles, pa.large_string())).to_pylist() == expected
    # A slice starts at an offset into its buffers; an escape may not run into the next title.
    assert canonical_titles(pa.array(["x%4", *titles, "1"])[1:-1]).to_pylist() == expected
    assert canonical_titles(pa.array(["%4", "1", "%", "41"])).to_pylist() == ["%4", "1", "%", "41"]


def test_lines_without_title_or_not_utf8_are_skipped_and_counted():
    raw = b"en Foo\nbn.m.v \nxx\nen \xff\xfe\nde Bar%20Baz\n"
    blacklist = parse_blacklist(raw, "test")
    assert blacklist.pairs == {("en", "Foo"), ("de", "Bar_Baz")}
    assert blacklist.skipped == {"no_title": 2, "invalid_utf8": 1}
    assert blacklist.sha256 == hashlib.sha256(raw).hexdigest()


def test_shipped_blacklist_is_the_assignments_list():
    shipped = load_blacklist(DEFAULT_BLACKLIST)
    assert shipped.lines == 57114
    assert shipped.skipped == {"no_title": 1}
    assert 57000 < len(shipped.pairs) <= 57113
    assert hashlib.md5(load_blacklist_bytes()).hexdigest() == "db1d7d16c05a0a50e7cb9b6e43c90861"


def load_blacklist_bytes():
    from wikitop.rank.blacklist import read_blacklist_bytes

    return read_blacklist_bytes(DEFAULT_BLACKLIST)


def test_decoded_matching_removes_127_rows_of_the_real_prefix(tmp_path):
    # DATA.md: byte-for-byte matching removes 3 rows of this file, canonical matching 127.
    blacklist = load_blacklist(DEFAULT_BLACKLIST)
    rows = [line.split(" ") for line in (DATA / "pageviews-2020-prefix.txt").read_text("utf-8").splitlines()]
    removed = sum((domain, reference.canonical_title(title)) in blacklist.pairs for domain, title, _, _ in rows)
    assert removed == 127


def test_parsed_blacklist_is_cached_by_digest(tmp_path):
    first = load_blacklist(DEFAULT_BLACKLIST, cache_dir=tmp_path)
    [cached] = (tmp_path / "blacklists").iterdir()
    assert cached.name == f"{first.sha256}.arrow"
    second = load_blacklist(DEFAULT_BLACKLIST, cache_dir=tmp_path)
    assert second.pairs == first.pairs and second.metadata() == first.metadata()
    other = tmp_path / "other"
    other.write_bytes(b"en Foo%20Bar\n")
    assert load_blacklist(str(other), cache_dir=tmp_path).pairs == {("en", "Foo_Bar")}


@pytest.mark.parametrize("location", ["builtin", "file", None])
def test_checking_what_is_done_reads_the_blacklist_digest_only(tmp_path, location):
    """The planner compares markers by the digest of the list's bytes; canonicalising its
    titles waits for a computation (the canonicalised list is cached only then)."""
    if location == "builtin":
        location = DEFAULT_BLACKLIST
    elif location == "file":
        location = str(tmp_path / "list")
        Path(location).write_bytes(b"en Foo%20Bar\nde Baz\n")
    cache = tmp_path / "cache"
    session = Wikitop(Settings(out=str(tmp_path / "out"), cache_dir=cache, blacklist=location))
    assert not session.is_done(Period.hour(HOUR))
    assert not (cache / "blacklists").exists()
    assert session.blacklist_sha256 == session.blacklist.sha256 == load_blacklist(location).sha256
    assert (cache / "blacklists").exists() == (location is not None)


def test_a_gzipped_blacklist_is_read_as_its_text_whatever_its_name(tmp_path):
    shipped = load_blacklist(DEFAULT_BLACKLIST)
    gzipped = tmp_path / "blacklist.txt"
    gzipped.write_bytes(gzip.compress(read_blacklist_bytes(DEFAULT_BLACKLIST)))
    from_gzip = load_blacklist(str(gzipped))
    assert from_gzip.pairs == shipped.pairs and from_gzip.lines == shipped.lines == 57114
    assert from_gzip.sha256 == shipped.sha256  # the same list, the same results


# Not one line of these is 'domain_code page_title' in UTF-8.
JUNK = bytes(range(256)) * 64 + b"\x89PNG\r\n\x1a\n\x00\x00 \xff\xfe\n"


@pytest.mark.parametrize(("content", "lines"), [
    (JUNK, JUNK.count(b"\n")),
    (gzip.compress(JUNK), JUNK.count(b"\n")),
    (b"", 0),
    (b"\n\nen\n \n", 4),
])
def test_a_blacklist_without_a_valid_line_is_refused(tmp_path, content, lines):
    path = tmp_path / "list"
    path.write_bytes(content)
    with pytest.raises(BlacklistError, match=f"blacklist {path} has no valid 'domain_code page_title' line "
                                             f"among {lines} lines"):
        read_blacklist_bytes(str(path))


def test_a_corrupt_gzip_blacklist_is_refused(tmp_path):
    path = tmp_path / "list.gz"
    path.write_bytes(gzip.compress(b"en Foo\n" * 1000)[:-20])
    with pytest.raises(BlacklistError, match=f"blacklist {path} is not a readable gzip file"):
        read_blacklist_bytes(str(path))


def test_the_cli_refuses_an_unusable_blacklist_before_any_download(cli, tmp_path, real_hour):
    site = Mirror(tmp_path / "site")
    site.add(HOUR, real_hour)
    junk = tmp_path / "junk.gz"
    junk.write_bytes(gzip.compress(JUNK))
    out = tmp_path / "out"
    with DumpServer(site.root) as server:
        for command in (("hour", "2020-01-22T02"), ("range", "2020-01-22T02", "2020-01-22T03")):
            result = cli(*command, "--source", server.url, "--out", out, "--blacklist", junk)
            assert result.returncode == 1
            assert result.stdout == ""
            assert result.stderr.splitlines() == [
                f"wikitop: error: the blacklist {junk} has no valid 'domain_code page_title' line among 67 lines"
            ]
        assert server.requests == []
    assert not out.exists()


NOT_FOUND_PAGE = b"""<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server.</p>
</body></html>
"""


@pytest.mark.parametrize("name", ["program", "not_found.html"])
def test_what_is_not_a_list_of_pairs_is_refused_in_one_line(cli, tmp_path, real_hour, name):
    """A program (/bin/ls: its printable runs look like 'code title' lines) and an HTML error
    page, each with a line or more that the old check took for a pair."""
    path = tmp_path / name
    path.write_bytes(Path("/bin/ls").read_bytes() if name == "program" else NOT_FOUND_PAGE)
    refusal = r"the blacklist \S+ (is not a list of 'domain_code page_title' lines: only \d+ of|has no valid)"
    with pytest.raises(BlacklistError, match=refusal):
        read_blacklist_bytes(str(path))
    site = Mirror(tmp_path / "site")
    site.add(HOUR, real_hour)
    result = cli("hour", "2020-01-22T02", "--source", site.root, "--out", tmp_path / "out", "--blacklist", path)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert re.match(f"wikitop: error: {refusal}", line), line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("line", "valid"), [
    (b"en Foo", True), (b"en.m Foo", True), (b"zh-min-nan Foo", True), (b"commons.m.m Foo", True),
    (b"<p>The requested", False), (b"EN Foo", False), (b"en. Foo", False), (b"-en Foo", False), (b"a_b Foo", False),
])
def test_domain_codes_must_look_like_domain_codes(line, valid):
    from wikitop.rank.blacklist import _entry

    assert isinstance(_entry(line), tuple) is valid


def test_the_test_data_readme_names_files_that_exist():
    readme = Path(__file__).parent / "data" / "README.md"
    named = re.findall(r"^\| `([^`]+)` \|", readme.read_text(), re.MULTILINE)
    assert len(named) == 2
    for name in named:
        assert (readme.parent / name).is_file(), name
