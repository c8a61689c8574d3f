"""Tests of the synthetic dump generator and of the reference implementation (the oracle)."""

import csv
import gzip
import io
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import reference
import wikitop.synthetic
from wikitop.synthetic import domain_codes, generate_hour

BLACKLIST = Path(wikitop.synthetic.__file__).parent / "data" / "blacklist_domains_and_pages"
HOUR_LINES = 200_000


@pytest.fixture(scope="module")
def hour(tmp_path_factory):
    path = tmp_path_factory.mktemp("hour") / "pageviews-20200101-010000.gz"
    stats = generate_hour(path, lines=HOUR_LINES, seed=7, blacklist_path=BLACKLIST)
    return path, stats


@pytest.fixture(scope="module")
def hour_views(hour):
    totals, bad = reference.read_pageviews(hour[0])
    return totals, bad


@pytest.fixture(scope="module")
def blacklist():
    return reference.load_blacklist(BLACKLIST)


def good_pairs_in_file_order(path):
    with gzip.open(path, "rb") as handle:
        for raw in handle.read().split(b"\n")[:-1]:
            try:
                domain_code, title, _ = reference.parse_line(raw)
            except reference.BadLine:
                continue
            yield domain_code.encode(), title.encode()


# --- the generator ---------------------------------------------------------------------


def test_same_seed_gives_same_bytes_whatever_the_hash_seed(tmp_path):
    first, second, other = tmp_path / "a.gz", tmp_path / "b.gz", tmp_path / "c.gz"
    generate_hour(first, lines=20_000, seed=5, blacklist_path=BLACKLIST)
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(Path(wikitop.__file__).parents[1]))
    code = (
        "from wikitop.synthetic import generate_hour; "
        f"generate_hour({str(second)!r}, lines=20_000, seed=5, blacklist_path={str(BLACKLIST)!r})"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    generate_hour(other, lines=20_000, seed=6, blacklist_path=BLACKLIST)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_gzip_header_holds_no_time_and_no_name(hour):
    header = hour[0].read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # no FNAME or other optional field
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime


def test_line_count_and_stats(hour, hour_views):
    path, stats = hour
    totals, bad = hour_views
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    assert data.endswith(b"\n")
    assert data.count(b"\n") == stats["lines"] == HOUR_LINES
    assert len(totals) == stats["good_lines"] == HOUR_LINES - sum(bad.values())


def test_pairs_are_sorted_by_bytes_and_unique(hour):
    pairs = list(good_pairs_in_file_order(hour[0]))
    assert all(previous < current for previous, current in zip(pairs, pairs[1:]))


def test_about_sixty_percent_of_counts_are_one(hour_views):
    totals, _ = hour_views
    ones = sum(1 for views in totals.values() if views == 1)
    assert 0.5 <= ones / len(totals) <= 0.7


def test_counts_have_a_heavy_tail_and_ties_at_the_top(hour_views):
    totals, _ = hour_views
    assert max(totals.values()) >= 5_000
    assert totals["en", "Main_Page"] >= 1_000
    by_rank = reference.top_pages(totals, set(), ties="rank")
    assert len(reference.top_pages(totals, set(), ties="dense")) > len(by_rank)
    assert len(by_rank) > len(reference.top_pages(totals, set(), ties="row"))
    # Deliberate ties between well-viewed pages, at places 2-3 and across place 25
    # (without them, about 11 and 18 domain codes of this file have such ties).
    views_by_domain = defaultdict(list)
    for domain_code, _title, views, _rank in by_rank:
        views_by_domain[domain_code].append(views)
    tied_second = [views for views in views_by_domain.values() if len(views) > 2 and views[1] == views[2] >= 10]
    tied_at_25 = [views for views in views_by_domain.values() if len(views) > 25 and views[24] >= 10]
    assert len(tied_second) >= 25
    assert len(tied_at_25) >= 25


def test_domain_codes(hour, hour_views):
    totals, _ = hour_views
    lines_per_domain = {}
    for domain_code, _ in totals:
        lines_per_domain[domain_code] = lines_per_domain.get(domain_code, 0) + 1
    assert len(lines_per_domain) == hour[1]["domains"] >= 40
    expected = {"en", "en.m", "de", "ja", "ar", "zh", "en.d", "en.m.d", "en.voy", "zh-yue"}
    expected |= {"commons.m", "commons.m.m", "www.wd", "m.wd", "www.w"}
    assert expected <= set(lines_per_domain)
    suffixes = {code.partition(".")[2] for code in lines_per_domain}
    assert {"", "m", "b", "d", "q", "s", "v", "voy", "n", "m.d", "m.m", "wd", "w"} <= suffixes
    # Heavy-tailed: English takes a big share, the typical code is small.
    assert (lines_per_domain["en"] + lines_per_domain["en.m"]) / len(totals) > 0.25
    assert statistics.median(lines_per_domain.values()) < 0.002 * len(totals)
    assert 1_700 <= len(domain_codes(6_000_000)) <= 1_900


def test_each_kind_of_bad_line_is_present(hour, hour_views):
    _, bad = hour_views
    assert bad == hour[1]["bad_lines"]
    assert set(bad) == set(reference.BAD_KINDS)
    assert all(3 <= count <= 10 for count in bad.values())


def test_no_bad_lines_when_asked(tmp_path):
    path = tmp_path / "clean.gz"
    stats = generate_hour(path, lines=5_000, seed=1, bad_lines=False)
    totals, bad = reference.read_pageviews(path)
    assert bad == {} and stats["bad_lines"] == {}
    assert len(totals) == 5_000


def test_titles_hold_awkward_characters(hour_views):
    titles = [title for _, title in hour_views[0]]
    for needle in ('"', ",", "\\", "'", "%25", "%_", "\u00a0", "😀", "Special:", "File:", "User:"):
        assert any(needle in title for title in titles), needle
    assert "-" in titles
    scripts = {"cyrillic": "\u0400", "arabic": "\u0600", "cjk": "\u4e00", "kana": "\u3040"}
    for name, start in scripts.items():
        assert any(start <= char <= chr(ord(start) + 0xFF) for title in titles for char in title[:3]), name
    assert 22 <= statistics.mean(len(title.encode()) for title in titles) <= 34


def test_spark_quoting_round_trips(tmp_path):
    plain, quoted = tmp_path / "plain.gz", tmp_path / "spark.gz"
    generate_hour(plain, lines=30_000, seed=11)
    stats = generate_hour(quoted, lines=30_000, seed=11, spark_quoting=True)
    assert stats["spark_quoted_titles"] > 0
    with gzip.open(quoted, "rb") as handle:
        assert b' "\\"' in handle.read()
    assert plain.read_bytes() != quoted.read_bytes()
    assert reference.read_pageviews(plain) == reference.read_pageviews(quoted)


def test_blacklisted_pairs_are_included_and_some_would_rank(hour, hour_views, blacklist):
    totals, _ = hour_views
    included = [(domain, title) for domain, title in totals if (domain, reference.canonical_title(title)) in blacklist]
    assert len(included) >= hour[1]["blacklisted_pairs"] >= 50
    # Many only match after decoding the list's percent-encoded titles.
    raw_entries = set()
    for line in BLACKLIST.read_bytes().decode("utf-8", "replace").split("\n"):
        domain, _, title = line.partition(" ")
        raw_entries.add((domain, title))
    assert sum(1 for pair in included if pair not in raw_entries) >= 10
    unfiltered = {(domain, title) for domain, title, _, _ in reference.top_pages(totals, set())}
    filtered = {(domain, title) for domain, title, _, _ in reference.top_pages(totals, blacklist)}
    assert len(unfiltered & set(included)) >= 10
    assert not filtered & set(included)


def test_command_line(tmp_path, capsys):
    path = tmp_path / "cli.gz"
    arguments = [str(path), "--lines", "3000", "--seed", "2", "--no-bad-lines", "--spark-quoting"]
    assert wikitop.synthetic.main(arguments) == 0
    assert '"lines": 3000' in capsys.readouterr().out
    assert reference.read_pageviews(path)[1] == {}


# --- the reference implementation ------------------------------------------------------


@pytest.mark.parametrize(
    "title, canonical",
    [
        ("Main_Page", "Main_Page"),
        ("Main Page", "Main_Page"),
        ("%D0%91%D0%BE%D1%80%D0%B8%D1%81", "Борис"),
        ("%25D8%25A5", "إ"),  # doubly encoded
        ("L%C3%AAer:Flag_of_Cura%C3%A7ao.svg", "Lêer:Flag_of_Curaçao.svg"),
        ("100%25_Pure", "100%_Pure"),
        ("100%_Pure", "100%_Pure"),  # % not followed by two hex digits stays
        ("50%", "50%"),
        ("%zz%4", "%zz%4"),
        ("%FF", "%FF"),  # not valid UTF-8 once decoded: not applied
        ("%25FF", "%FF"),  # first step valid, second not
        ("A%20B", "A_B"),
        ("%2525", "%"),
        ('Brian_"Head"_Welch', 'Brian_"Head"_Welch'),
        ("Ab%c3%a9", "Abé"),  # lower-case hex digits
    ],
)
def test_canonical_title(title, canonical):
    assert reference.canonical_title(title) == canonical


@pytest.mark.parametrize(
    "title, unquoted",
    [
        ('"\\"Weird_Al\\"_Yankovic"', '"Weird_Al"_Yankovic'),
        ('"Heroes"', '"Heroes"'),  # pre-2023 title, no escaped quote inside
        ('""', '""'),
        ('"\\""', '"'),
        ('"a\\"b"c"', '"a\\"b"c"'),  # an unescaped quote inside: taken as is
        ('ar_"x"', 'ar_"x"'),
        ('"\\"x\\"', '"x\\'),  # inner part \"x\ : one escaped quote, nothing else to undo
    ],
)
def test_unquote_spark_title(title, unquoted):
    assert reference.unquote_spark_title(title) == unquoted


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"en Main_Page 42 0", ("en", "Main_Page", 42)),
        (b"en Main_Page 42 0\r", ("en", "Main_Page", 42)),  # the 4th field is not checked
        (b'en "\\"Weird_Al\\"_Yankovic" 12 0', ("en", '"Weird_Al"_Yankovic', 12)),
        ("ar.m.n إيلون_\"أغرب\" 1 0".encode(), ("ar.m.n", 'إيلون_"أغرب"', 1)),
        (b"en 000 1 0", ("en", "000", 1)),
        (b"en x " + b"9" * 18 + b" 0", ("en", "x", int("9" * 18))),
        (b"", "empty_line"),
        (b"en Caf\xe9 2 0", "invalid_utf8"),
        (b" Title 3 0", "empty_domain_code"),
        (b" wikifunctions Title 3 0", "empty_domain_code"),
        (b"en Title 3", "wrong_field_count"),
        (b"en Two words 3 0", "wrong_field_count"),
        (b"en  Title 3 0", "wrong_field_count"),
        (b"en\tTitle 3 0", "wrong_field_count"),
        (b"en Title -5 0", "negative_count"),
        (b"en Title abc 0", "invalid_count"),
        (b"en Title  0", "invalid_count"),
        (b"en Title +5 0", "invalid_count"),
        (b"en Title 1.5 0", "invalid_count"),
        (b"en Title \xd9\xa3 0", "invalid_count"),  # an Arabic-Indic digit
        (b"en x " + b"9" * 19 + b" 0", "invalid_count"),
    ],
)
def test_parse_line(raw, expected):
    if isinstance(expected, tuple):
        assert reference.parse_line(raw) == expected
    else:
        with pytest.raises(reference.BadLine) as caught:
            reference.parse_line(raw)
        assert caught.value.kind == expected


def test_read_pageviews_plain_and_gzip(tmp_path):
    content = b"aa Main_Page 8 0\n\nab - 1 0\nab X 2\nab Y 3 0"  # no final newline
    plain = tmp_path / "hour.txt"
    plain.write_bytes(content)
    packed = tmp_path / "hour.gz"
    packed.write_bytes(gzip.compress(content + b"\n"))
    expected = ({("aa", "Main_Page"): 8, ("ab", "-"): 1, ("ab", "Y"): 3}, {"empty_line": 1, "wrong_field_count": 1})
    assert reference.read_pageviews(plain) == expected
    assert reference.read_pageviews(packed) == expected


def test_load_blacklist(tmp_path):
    path = tmp_path / "blacklist"
    path.write_bytes(
        b"ab %D0%91%D0%BE%D1%80%D0%B8%D1%81\n"
        b"ar %25D8%25A5\n"
        b"en Brian_\"Head\"_Welch\r\n"
        b"bn.m.v \n"
        b"nospace\n"
        b"de Caf\xe9\n"
        b"en A%20B\n"
    )
    assert reference.load_blacklist(path) == {
        ("ab", "Борис"),
        ("ar", "إ"),
        ("en", 'Brian_"Head"_Welch'),
        ("en", "A_B"),
    }


TIED = {
    ("en", "A"): 10,
    ("en", "C"): 8,
    ("en", "B"): 8,
    ("en", "D"): 5,
    ("en", "E"): 5,
    ("en", "F"): 3,
    ("de", "Z"): 1,
}


@pytest.mark.parametrize(
    "ties, top, expected",
    [
        ("rank", 2, [("A", 10, 1), ("B", 8, 2), ("C", 8, 2)]),
        ("rank", 3, [("A", 10, 1), ("B", 8, 2), ("C", 8, 2)]),
        ("rank", 4, [("A", 10, 1), ("B", 8, 2), ("C", 8, 2), ("D", 5, 4), ("E", 5, 4)]),
        ("dense", 2, [("A", 10, 1), ("B", 8, 2), ("C", 8, 2)]),
        ("dense", 3, [("A", 10, 1), ("B", 8, 2), ("C", 8, 2), ("D", 5, 3), ("E", 5, 3)]),
        ("row", 2, [("A", 10, 1), ("B", 8, 2)]),
        ("row", 4, [("A", 10, 1), ("B", 8, 2), ("C", 8, 3), ("D", 5, 4)]),
    ],
)
def test_top_pages_tie_rules(ties, top, expected):
    rows = reference.top_pages(TIED, set(), top=top, ties=ties)
    assert rows[0] == ("de", "Z", 1, 1)
    assert [(title, views, rank) for domain, title, views, rank in rows[1:]] == expected


def test_top_pages_orders_titles_by_utf8_bytes_and_drops_blacklisted():
    totals = {("en", "é"): 2, ("en", "z"): 2, ("en", "😀"): 2, ("en", "\uff08"): 2, ("en", "100%_Pure"): 9}
    rows = reference.top_pages(totals, {("en", "100%_Pure")}, ties="row")
    assert [title for _, title, _, _ in rows] == ["z", "é", "\uff08", "😀"]
    assert [rank for *_, rank in rows] == [1, 2, 3, 4]


def test_expected_csv_rows_sums_hours_and_applies_blacklist(tmp_path):
    first, second, blacklist_path = tmp_path / "h1.txt", tmp_path / "h2.gz", tmp_path / "blacklist"
    first.write_bytes(b'en A 5 0\nen B 1 0\nen 100%25_Pure 50 0\nen C,_"x" 2 0\n')
    second.write_bytes(gzip.compress(b"en B 7 0\nfr A 1 0\n"))
    blacklist_path.write_bytes(b"en 100%2525_Pure\n")
    rows = reference.expected_csv_rows([first, second], blacklist_path, top=2)
    assert rows == [
        ["domain_code", "page_title", "views", "rank"],
        ["en", "B", "8", "1"],
        ["en", "A", "5", "2"],
        ["fr", "A", "1", "1"],
    ]
    single = reference.expected_csv_rows(first, top=25, ties="dense")
    assert single[1] == ["en", "100%25_Pure", "50", "1"]
    written = io.StringIO()
    csv.writer(written).writerows(single)
    assert list(csv.reader(io.StringIO(written.getvalue()))) == single


def test_a_missing_blacklist_is_bad_usage_not_a_traceback(tmp_path):
    missing = tmp_path / "MISSING"
    done = subprocess.run([sys.executable, "-m", "wikitop.synthetic", str(tmp_path / "out.gz"), "--lines", "10000",
                           "--blacklist", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and f"--blacklist {missing}: no such file" in done.stderr
    assert not (tmp_path / "out.gz").exists()
