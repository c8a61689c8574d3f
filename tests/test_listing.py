"""Noise controls and whole projects, checked against the independent reference."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest

import reference
import windows
from conftest import HOUR
from wikitop.publish.store import deserialize, serialize
from wikitop.rank.blacklist import empty_blacklist, parse_blacklist
from wikitop.rank.duckdb_engine import DuckDBEngine
from wikitop.rank.projects import Listing, glob_regex, project_of
from wikitop.synthetic import domain_codes

HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"
LISTINGS = [
    {"exclude_noise": True},
    {"namespace": "main"},
    {"min_views": 3},
    {"exclude": ("*_(*)", "[A-C]?*", "Special:Search")},
    {"group": "project"},
    {"group": "project", "exclude_noise": True, "namespace": "main", "min_views": 2, "exclude": ("*[!a-z]",)},
]


def rows(table: pa.Table) -> list[tuple]:
    return [tuple(row.values()) for row in table.to_pylist()]


@pytest.fixture(scope="module")
def engine():
    return DuckDBEngine(threads=2)


@pytest.fixture(scope="module")
def reference_totals():
    """The reference's page totals of a dump (or dumps), each read once."""
    cache = {}

    def totals(*paths):
        if paths not in cache:
            cache[paths] = reference.read_totals(list(paths))
        return cache[paths]

    return totals


@pytest.fixture(scope="module")
def window_totals(engine, tmp_path_factory, real_hour, generated_hour):
    """Hourly totals kept by the engine for the real hour, the generated one, the real one again."""
    folder = tmp_path_factory.mktemp("window")
    paths = []
    for number, dump in enumerate([real_hour, generated_hour, real_hour]):
        paths.append(folder / f"{number}.parquet")
        engine.process_hour(dump, empty_blacklist(), 1, "rank", totals_path=paths[-1])
    return paths


@pytest.mark.parametrize(
    "code, expected",
    [
        ("en", ("en.wikipedia", False)), ("en.m", ("en.wikipedia", True)), ("en.m.d", ("en.wiktionary", True)),
        ("commons.m", ("commons.wikimedia", False)), ("commons.m.m", ("commons.wikimedia", True)),
        ("www.wd", ("www.wikidata", False)), ("m.wd", ("www.wikidata", True)), ("en.zero", ("en.wikipedia", True)),
        ("en.zero.voy", ("en.wikivoyage", True)), ("wikimania2019.m", ("wikimania2019.wikimedia", False)),
        ("ar.m.m", ("ar.wikimedia", True)), ("ge.m", ("ge.wikimedia", False)), ("nyc.m", ("nyc.wikimedia", False)),
        ("ar.m", ("ar.wikipedia", True)), ("zh-yue", ("zh-yue.wikipedia", False)), ("a.b.c", ("a.b.c", False)),
    ],
)  # fmt: skip
def test_domain_codes_map_to_projects(code, expected):
    assert project_of(code) == expected == reference.project_of(code)


def test_every_generated_code_maps_as_the_reference_maps_it():
    codes = domain_codes(6_000_000)
    assert {code: project_of(code) for code in codes} == {code: reference.project_of(code) for code in codes}


def test_globs_match_whole_titles_as_fnmatch_does(engine, tmp_path):
    titles = ["Star_Wars:_Episode_IV", "a", "ab", "a\rb", "[x]", "x]", "!x", "50%", "a'b", "é😀", "Ab_(film)", "-"]
    patterns = ["a*", "?", "*_(*)", "[[]x]", "[!a-z]*", "*%", "a'*", "??", "[]]", "x]", "é?", "[!]x]*", "a\rb"]
    dump = tmp_path / "titles.txt"
    dump.write_bytes("".join(f"x {title} 1 0\n" for title in sorted(titles, key=str.encode)).encode())
    for pattern in patterns:
        result = engine.process_hour(dump, empty_blacklist(), 100, "row", listing=Listing(exclude=(pattern,)))
        kept = {row[1] for row in rows(result.table)}
        assert kept == {t for t in titles if not reference.fnmatch.fnmatchcase(t, pattern)}, pattern
    assert "'" not in glob_regex("a'b") and "\\" not in glob_regex("a\\b").replace("\\x", "").replace("\\A", "") \
        .replace("\\z", "")


@pytest.mark.parametrize("pattern", ["", "[z-a]"])
def test_bad_globs_are_refused(pattern):
    with pytest.raises(ValueError):
        Listing(exclude=(pattern,))


@pytest.mark.parametrize("options", LISTINGS)
def test_real_hour_matches_the_reference(engine, real_hour, blacklist_file, reference_totals, options):
    from wikitop.rank.blacklist import load_blacklist

    result = engine.process_hour(real_hour, load_blacklist(str(blacklist_file)), 10, "rank",
                                 listing=Listing(**options))
    expected = reference.listed_rows(reference_totals(real_hour), reference.load_blacklist(blacklist_file),
                                     10, "rank", **options)
    assert rows(result.table) == expected
    assert result.pages == 90038


def test_real_hour_noise_is_gone(engine, real_hour):
    listing = Listing(exclude_noise=True, group="project")
    table = engine.process_hour(real_hour, empty_blacklist(), 3, "row", listing=listing).table
    by_project = {}
    for project, title, views, share, rank in rows(table):
        by_project.setdefault(project, []).append((title, views, share))
    # A sister project's renamed main page (ar.wikinews') is unknown to the sources: Wikipedias only.
    titles = {title for project, listed in by_project.items() if project.endswith(".wikipedia")
              for title, _, _ in listed}
    assert not {"-", "Main_Page", "الصفحة_الرئيسية", "Tuisblad", "Special:Search", "خاص:بحث"} & titles
    assert "ar.m" not in by_project and by_project["ar.wikipedia"][0] == ("رأس_السنة_الميلادية", 1407, 1304 / 1407)


# Each listing with rank; the one that combines every control with each ties rule.
@pytest.mark.parametrize(
    ("options", "ties"),
    [(options, "rank") for options in LISTINGS[::2]] + [(LISTINGS[-1], ties) for ties in ("rank", "dense", "row")],
)
def test_generated_hour_matches_the_reference(engine, generated_hour, blacklist_file, reference_totals, options,
                                              ties):
    from wikitop.rank.blacklist import load_blacklist

    result = engine.process_hour(generated_hour, load_blacklist(str(blacklist_file)), 10, ties,
                                 listing=Listing(**options))
    expected = reference.listed_rows(reference_totals(generated_hour),
                                     reference.load_blacklist(blacklist_file), 10, ties, **options)
    assert rows(result.table) == expected


def test_the_generated_hour_holds_the_noise(generated_hour, reference_totals):
    totals = reference_totals(generated_hour)
    titles = {title for _, title in totals}
    assert {"-", "Main_Page", "Special:Search", "Wikipedia:Hauptseite"} <= titles
    assert any(title.startswith("Spezial:") for title in titles) and any(t.startswith("User_talk:") for t in titles)
    assert {"en.m", "commons.m.m", "m.wd"} <= {code for code, _ in totals}


@pytest.mark.parametrize("options", LISTINGS)
def test_windows_over_hourly_totals_match_the_reference(
    engine, window_totals, real_hour, generated_hour, reference_totals, options
):
    paths = window_totals
    blacklist_lines = b"en Main_Page\nen.m Special:Search\nar.m %D8%B1%D8%A3%D8%B3_%D8%A7%D9%84%D8%B3%D9%86%D8%A9\n"
    blacklist = parse_blacklist(blacklist_lines, "test")
    result = engine.process_totals(paths, blacklist, 5, "rank", listing=Listing(**options))
    entries = (line.partition(" ") for line in blacklist_lines.decode().splitlines())
    reference_blacklist = {(code, reference.canonical_title(title)) for code, _, title in entries}
    totals = reference_totals(real_hour, generated_hour, real_hour)
    assert rows(result.table) == reference.listed_rows(totals, reference_blacklist, 5, "rank", **options)


@pytest.mark.parametrize("ties", ["rank", "dense", "row"])
@pytest.mark.parametrize("min_views", [0, 150, 1000, 1201])
def test_min_views_bounds_window_totals_not_hours(engine, tmp_path, ties, min_views):
    hours = windows.tricky_hours()
    paths = windows.write_hours(tmp_path, hours)
    listing = Listing(min_views=min_views, group="project" if min_views % 2 else "domain")
    result = engine.process_totals(paths, empty_blacklist(), windows.TOP, ties, listing=listing)
    expected = reference.listed_rows(windows.summed(hours), set(), windows.TOP, ties, min_views=min_views,
                                     group=listing.group)
    assert rows(result.table) == expected
    if min_views == 1000:
        assert ("steady.x", "Steady", 1200, 1) in expected and all(views >= 1000 for _, _, views, _ in expected)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_project_results_round_trip_in_every_format(fmt):
    from wikitop.model import PROJECT_RESULT_SCHEMA

    table = pa.table({"project": ["en.wikipedia", "en.wikipedia", "x"], "page_title": ["A,b", "B", "C"],
                      "views": [3, 1, 0], "mobile_share": [2 / 3, 1.0, None], "rank": [1, 2, 1]},
                     schema=PROJECT_RESULT_SCHEMA)
    read_back = deserialize(serialize(table, fmt), fmt)
    if fmt != "csv":
        assert read_back.equals(table)  # the share whole
        return
    # CSV prints the share to 4 decimals, and reads it back so.
    assert read_back.column("mobile_share").to_pylist() == [0.6667, 1.0, None]
    assert read_back.drop_columns("mobile_share").equals(table.drop_columns("mobile_share"))
    lines = gzip.decompress(serialize(table, fmt)).decode().splitlines()
    assert lines == ["project,page_title,views,mobile_share,rank", 'en.wikipedia,"A,b",3,0.6667,1',
                     "en.wikipedia,B,1,1,2", "x,C,0,,1"]


def test_cli_records_the_settings_and_recomputes_when_they_change(cli, mirror, real_hour, tmp_path):
    mirror.add(HOUR, real_hour)
    out = tmp_path / "out"
    base = ("hour", HOUR_ARG, "--source", mirror.root, "--out", out)
    assert cli(*base).returncode == 0
    marker = json.loads((out / PARTITION / "_SUCCESS").read_text())
    assert set(marker["params"]) == {"period", "top", "ties", "format", "blacklist_sha256"}

    grouped = (*base, "--group", "project", "--exclude-noise", "--namespace", "main", "--min-views", "2",
               "--exclude", "*_(*)", "--exclude", "Wikipedia")
    result = cli(*grouped)
    assert result.returncode == 0 and "already" not in result.stdout, result.stderr
    marker = json.loads((out / PARTITION / "_SUCCESS").read_text())
    assert {key: marker["params"][key] for key in ("group", "exclude_noise", "namespace", "min_views", "exclude")} \
        == {"group": "project", "exclude_noise": True, "namespace": "main", "min_views": 2,
            "exclude": ["*_(*)", "Wikipedia"]}
    data = gzip.decompress((out / PARTITION / marker["file"]).read_bytes()).decode()
    assert data.startswith("project,page_title,views,mobile_share,rank\n")
    assert "already done" in cli(*grouped).stdout
    assert "already" not in cli(*grouped[:-1], "Wikipedia_(*)").stdout

    shown = cli("show", HOUR_ARG, "--out", out, "--domain", "ar.wikipedia", "--limit", "2")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "project\tpage_title\tviews\tmobile_share\trank"
    # 1304 / 1407 views from mobile, to 4 decimals
    assert shown.stdout.splitlines()[1] == "ar.wikipedia\tرأس_السنة_الميلادية\t1407\t0.9268\t1"
    for command in ("show", "report"):
        by_code = cli(command, HOUR_ARG, "--out", out, "--domain", "ar", "--domain", "ar.m", "--domain", "ab")
        assert by_code.returncode == 1
        assert by_code.stderr.strip().endswith("no rows for project ar, ar.m, ab (it is ranked by project, with "
                                               "--group project: ask for ar.wikipedia, ab.wikipedia)"), by_code.stderr


def test_cli_refuses_a_backwards_glob_range_in_one_line(cli, tmp_path):
    result = cli("hour", HOUR_ARG, "--out", tmp_path, "--exclude", "[z-a]")
    assert result.returncode == 2
    assert "runs backwards" in result.stderr and "Traceback" not in result.stderr


NAMESPACE_TITLES = ["Special:Search", "special:Search", "SPECIAL:Random", "talk:Foo", "特수:검색", "특수:검색",
                    "ΣΥΖΉΤΗΣΗ:Χ", "Συζήτηση:Χ", "συζήτηση:Χ", "KULLANICI:X", "Kullanıcı:X", "İzmir:X", "Draft:X",
                    "Draft_talk:X", "Спеціальна:Пошук", "СПЕЦІАЛЬНА:Пошук", "Kategori:X", "Bozza:X", "bozza:X",
                    "Wikcionario:X", "Hauptseite", "위키백과:대문", "Article", "Фу:Бар"]
NAMESPACE_CODES = ["en", "en.m", "ko", "el", "tr", "uk.m", "id", "it", "de.b", "es.d", "ge.m", "commons.m.m"]


def namespace_dump(path):
    lines = sorted((f"{code} {title} 1 0" for code in NAMESPACE_CODES for title in NAMESPACE_TITLES), key=str.encode)
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return path


@pytest.mark.parametrize("options", [{"exclude_noise": True}, {"namespace": "main"}])
def test_namespaces_match_in_any_case_per_wiki(engine, tmp_path, options):
    dump = namespace_dump(tmp_path / "namespaces.txt")
    kept = set(rows(engine.process_hour(dump, empty_blacklist(), 1000, "row", listing=Listing(**options)).table))
    expected = reference.listed_rows(reference.read_totals(dump), set(), 1000, "row", **options)
    assert kept == set(expected)
    pairs = {(code, title) for code, title, _, _ in kept}
    assert ("ko", "특수:검색") not in pairs and ("en", "SPECIAL:Random") not in pairs and ("en", "special:Search") \
        not in pairs and ("uk.m", "СПЕЦІАЛЬНА:Пошук") not in pairs
    if options.get("namespace") == "main":
        assert ("en", "talk:Foo") not in pairs and ("id", "Kategori:X") not in pairs and ("it", "bozza:X") not in pairs
        assert ("ko", "위키백과:대문") not in pairs and ("el", "ΣΥΖΉΤΗΣΗ:Χ") not in pairs
        assert ("en", "Draft:X") not in pairs and ("de.b", "Draft:X") in pairs and ("en", "Фу:Бар") in pairs
    else:
        assert ("de.b", "Hauptseite") not in pairs and ("en", "talk:Foo") in pairs
