"""Days and windows sum only the pages that can make their lists, and give the exact answer."""

from __future__ import annotations

import pytest

import reference
import windows
from wikitop.rank import ViewsOverflow
from wikitop.rank.blacklist import empty_blacklist, parse_blacklist
from wikitop.rank.duckdb_engine import DuckDBEngine
from wikitop.rank.sql import render


def reference_rows(hours: windows.Hours, blacklist_lines: bytes, top: int, ties: str) -> list[tuple]:
    blacklist = set()
    for line in blacklist_lines.decode().splitlines():
        domain_code, _, title = line.partition(" ")
        blacklist.add((domain_code, reference.canonical_title(title)))
    return reference.top_pages(windows.summed(hours), blacklist, top=top, ties=ties)


def engine_rows(paths, blacklist_lines: bytes, top: int, ties: str):
    blacklist = parse_blacklist(blacklist_lines, "test") if blacklist_lines else empty_blacklist()
    result = DuckDBEngine(threads=2).process_totals(paths, blacklist, top, ties)
    return [tuple(row.values()) for row in result.table.to_pylist()], result


@pytest.mark.parametrize("ties", ["rank", "dense", "row"])
def test_pages_never_among_an_hours_busiest_still_win(tmp_path, ties):
    hours = windows.tricky_hours()
    paths = windows.write_hours(tmp_path, hours)
    rows, result = engine_rows(paths, windows.BLACKLIST_LINES, windows.TOP, ties)
    assert rows == reference_rows(hours, windows.BLACKLIST_LINES, windows.TOP, ties)
    if ties == "dense":
        assert ("dense.x", "Slow", 800, 2) in rows
        assert ("tied.x", "Low", 80, 2) in rows
    assert result.page_hours == sum(len(hour) for hour in hours)
    assert result.pages is None and result.blacklisted_pages is None


def test_the_tricky_hours_hold_what_they_promise(tmp_path):
    hours = windows.tricky_hours()
    rows, _ = engine_rows(windows.write_hours(tmp_path, hours), windows.BLACKLIST_LINES, windows.TOP, "rank")
    by_domain = {}
    for domain_code, title, views, rank in rows:
        by_domain.setdefault(domain_code, []).append((title, views, rank))
    assert by_domain["steady.x"][:2] == [("Steady", 1200, 1), ("At_bound", 1000, 2)]
    assert len(by_domain["steady.x"]) == 7 and "Below" not in {title for title, _, _ in by_domain["steady.x"]}
    assert by_domain["bl.x"] == [("Steady", 2000, 1)] + [(f"Spike_{i}", 1500, 2) for i in range(3)]
    assert len(by_domain["dense.x"]) == 61 and {views for _, views, _ in by_domain["dense.x"]} == {1000}
    assert by_domain["tied.x"] == [("Second", 100, 1), ("Third", 100, 1), ("Top", 100, 1)]
    assert by_domain["small.x"] == [("One", 7, 1), ("Two", 3, 2)]
    assert by_domain["zero.x"] == [(f"Zero_{i}", 0, 1) for i in range(4)]


@pytest.mark.parametrize("seed", range(40))
def test_random_windows_match_summing_every_page(tmp_path, seed):
    hours = windows.random_hours(seed, hours=1 + seed % 9)
    top = 1 + seed % 4
    ties = ("rank", "dense", "row")[seed % 3]
    blacklist_lines = b"d0.x P1\nd1.x P0\nd1.x P2\n" if seed % 2 else b""
    rows, _ = engine_rows(windows.write_hours(tmp_path, hours), blacklist_lines, top, ties)
    assert rows == reference_rows(hours, blacklist_lines, top, ties)


def test_a_window_without_pages_has_an_empty_list(tmp_path):
    paths = windows.write_hours(tmp_path, [{}, {}])
    rows, result = engine_rows(paths, b"", 25, "rank")
    assert rows == [] and result.page_hours == 0


@pytest.mark.parametrize("top", [1, 2, 3])
def test_totals_up_to_2_to_the_63_minus_1_are_exact(tmp_path, top):
    hours = windows.hours_near_64_bits()
    rows, _ = engine_rows(windows.write_hours(tmp_path, hours), b"", top, "rank")
    assert rows == reference_rows(hours, b"", top, "rank")
    assert rows[0] == ("big.x", "Max", windows.MAX_VIEWS, 1)


def test_totals_past_2_to_the_63_minus_1_name_the_page(tmp_path):
    paths = windows.write_hours(tmp_path, windows.hours_past_64_bits())
    with pytest.raises(ViewsOverflow, match=r"^the views of big\.x/Past add up to more than 2\^63-1$"):
        engine_rows(paths, b"", 1, "rank")


@pytest.mark.parametrize("hours", [0, -1, True, "24"])
def test_the_number_of_hours_must_be_a_positive_integer(hours):
    with pytest.raises(ValueError, match="hours must be a positive integer"):
        render("window_pageviews", hours=hours)
