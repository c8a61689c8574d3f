"""wikitop report: the HTML page of a published result, its hourly views, and the page in a real
headless browser (Debian's chromium)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HOUR, Mirror, run_wikitop, wikitop_env
from daydata import add_real_day
from wikitop.lake import Lake, Source
from wikitop.model import RESULT_SCHEMA, Period
from wikitop.publish.report import (
    KEPT_TOTALS,
    PUBLISHED_TOP,
    UNKNOWN,
    HourlyViews,
    ReportError,
    busiest_groups,
    hourly_views,
    render_report,
    sparkline_svg,
    write_report,
)
from wikitop.publish.store import ResultStore

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(apt-get install chromium); the browser test needs it")
WINDOW_START = datetime(2020, 1, 22, 6, tzinfo=UTC)
WINDOW_HOURS = 4
# A title that would run a script, and end the table, if it were not escaped.
HOSTILE_TITLE = '</td></tr></table><script>console.error("not escaped")</script><b>x'


def result_table(rows: list[tuple[str, str, int, int]], key: str = "domain_code") -> pa.Table:
    columns = list(zip(*rows))
    return pa.table({key: columns[0], "page_title": columns[1], "views": columns[2], "rank": columns[3]})


SMALL_RESULT = [
    ("de", "Berlin", 50, 1), ("de", "Hamburg", 20, 2),
    ("en", "Main_Page", 900, 1), ("en", HOSTILE_TITLE, 30, 2), ("en", "Cat", 30, 2),
    ("fr", "Paris", 400, 1),
]


def sections(html: str) -> list[str]:
    return re.findall(r'<section class="group" id="group-\d+" data-group="([^"]*)">', html)


def test_the_busiest_groups_by_listed_views_are_shown_by_default():
    table = result_table(SMALL_RESULT)
    assert busiest_groups(table, 2) == ["en", "fr"]
    html = render_report(table, Period.hour(HOUR), busiest=2)
    assert sections(html) == ["en", "fr"]
    assert "The 2 domain_code values whose listed pages have the most views" in html


def test_chosen_groups_come_in_the_order_given_with_their_rows_limited():
    html = render_report(result_table(SMALL_RESULT), Period.hour(HOUR), groups=["fr", "de"], limit=1)
    assert sections(html) == ["fr", "de"]
    assert "Berlin" in html and "Hamburg" not in html
    assert 'style="width: 100.0%"' in html


def test_a_group_not_in_the_result_is_a_clear_error():
    with pytest.raises(ReportError, match="no rows for domain_code xx"):
        render_report(result_table(SMALL_RESULT), Period.hour(HOUR), groups=["en", "xx"])


def test_titles_are_escaped():
    html = render_report(result_table(SMALL_RESULT), Period.hour(HOUR), groups=["en"])
    assert "<script>" not in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;" in html


def test_a_result_grouped_by_project_is_reported_by_its_first_column():
    table = result_table([("en.wikipedia", "Main_Page", 10, 1), ("de.wikipedia", "Berlin", 4, 1)], key="project")
    html = render_report(table, Period.hour(HOUR))
    assert sections(html) == ["en.wikipedia", "de.wikipedia"]
    assert "per project" in html


def test_an_hour_has_no_sparklines_and_a_window_has_one_per_row():
    table = result_table(SMALL_RESULT)
    assert "<img" not in render_report(table, Period.hour(HOUR))
    window = Period.window(HOUR, HOUR + timedelta(hours=2))
    hourly = HourlyViews(window.hours, {("fr", "Paris"): [100, None, 300]}, [KEPT_TOTALS, UNKNOWN, KEPT_TOTALS])
    html = render_report(table, window, groups=["fr"], hourly=hourly)
    assert html.count('<img class="sparkline" src="data:image/svg+xml;base64,') == 1
    assert 'title="01-22 02h: 100; 01-22 03h: ?; 01-22 04h: 300"' in html
    assert "Hours from kept totals: 2;" in html and "not known: 1." in html


def test_a_sparkline_is_the_same_svg_every_time_and_shows_unknown_hours():
    known = sparkline_svg([5, 9, 3, 7])
    assert known == sparkline_svg([5, 9, 3, 7])
    assert known.lstrip().startswith("<?xml") and "<svg" in known
    # An unknown hour is a grey band, drawn as one more path than with every hour known.
    with_gap = sparkline_svg([5, None, 3, 7])
    assert with_gap.count("#e4e4e4") == 1 and known.count("#e4e4e4") == 0


def publish_hour(store: ResultStore, hour: datetime, rows) -> None:
    table = result_table(rows).cast(RESULT_SCHEMA)
    store.publish(Period.hour(hour), "csv", table, {"period": Period.hour(hour).metadata()})


def keep_totals(lake: Lake, hour: datetime, rows) -> None:
    columns = list(zip(*rows))
    with lake.staging() as path:
        pq.write_table(pa.table({"domain_code": columns[0], "page_title": columns[1], "views": columns[2]}), path)
        lake.write_hour(hour, path, rows=len(rows), source=Source("x"), lines=None)


def test_hourly_views_come_from_kept_totals_else_published_tops_else_unknown(tmp_path):
    window = Period.window(HOUR, HOUR + timedelta(hours=2))
    first, second, third = window.hours
    totals_dir = Lake(str(tmp_path / "lake"))
    store = ResultStore(str(tmp_path / "out"))
    keep_totals(totals_dir, first, [("en", "Cat", 7), ("en", "Dog", 3), ("de", "Cat", 99)])
    publish_hour(store, first, [("en", "Dog", 1000, 1)])  # the kept totals win
    publish_hour(store, second, [("en", "Cat", 12, 1)])
    pages = [("en", "Cat"), ("en", "Dog"), ("en", "Rare")]
    views = hourly_views(window, pages, "domain_code", totals_dir, store)
    assert views.sources == [KEPT_TOTALS, PUBLISHED_TOP, UNKNOWN]
    # In kept totals a page absent is a page not viewed; in a top list it is not known.
    assert views.views == {("en", "Cat"): [7, 12, None], ("en", "Dog"): [3, None, None],
                           ("en", "Rare"): [0, None, None]}
    # Totals are per domain code: a result grouped otherwise reads published tops only.
    by_project = hourly_views(window, [("en", "Cat")], "project", totals_dir, store)
    assert by_project.sources == [UNKNOWN, UNKNOWN, UNKNOWN]


def test_unreadable_kept_totals_are_a_clear_error(tmp_path):
    totals_dir = Lake(str(tmp_path / "lake"))
    staged = tmp_path / "bad.parquet"
    staged.write_bytes(b"not parquet")
    totals_dir.write_hour(HOUR, staged, rows=0, source=Source("x"), lines=None)
    with pytest.raises(ReportError, match="cannot read the kept hourly totals"):
        hourly_views(Period.window(HOUR, HOUR + timedelta(hours=1)), [("en", "Cat")], "domain_code", totals_dir, None)


def test_the_page_is_written_atomically(tmp_path):
    target = write_report("<p>one</p>", tmp_path / "r.html")
    assert target.read_text() == "<p>one</p>" and [p.name for p in tmp_path.iterdir()] == ["r.html"]
    with pytest.raises(ReportError, match="cannot write"):
        write_report("<p>two</p>", tmp_path / "missing" / "r.html")
    assert target.read_text() == "<p>one</p>" and [p.name for p in tmp_path.iterdir()] == ["r.html"]


@pytest.fixture(scope="module")
def published_window(tmp_path_factory):
    """Four hours made from the real prefix, published hourly (totals kept) and as a window;
    the third hour's totals are then removed, so its views come from its published top list."""
    root = tmp_path_factory.mktemp("window")
    mirror = Mirror(root / "mirror")
    add_real_day(mirror, WINDOW_START, hours=WINDOW_HOURS)
    env = wikitop_env(WIKITOP_CACHE_DIR=str(root / "cache"))
    end = WINDOW_START + timedelta(hours=WINDOW_HOURS - 1)
    common = ["--source", mirror.root, "--out", root / "out", "-q"]
    for command in (["range", WINDOW_START.isoformat(), end.isoformat()],
                    ["window", WINDOW_START.isoformat(), end.isoformat()]):
        done = run_wikitop(*command, *common, env=env)
        assert done.returncode == 0, done.stderr
    (Path(Lake(str(root / "cache" / "lake")).partition(WINDOW_START + timedelta(hours=2))) / "_SUCCESS").unlink()
    return root, env, f"{WINDOW_START:%Y-%m-%dT%H}..{end:%Y-%m-%dT%H}"


def test_report_command_writes_a_window_with_sparklines(published_window, tmp_path):
    root, env, window = published_window
    done = run_wikitop("report", window, "--out", root / "out", "--busiest", "3", "--limit", "5",
                       "--html", tmp_path / "w.html", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"-> {tmp_path / 'w.html'}")
    html = (tmp_path / "w.html").read_text()
    assert len(sections(html)) == 3 and html.count('class="sparkline"') == 15
    assert "Hours from kept totals: 3;" in html and "from a published hourly top: 1" in html


def test_report_command_fails_in_one_line(published_window, tmp_path):
    root, env, window = published_window
    for args, message in [
        (["2019-01-01T00"], "wikitop: nothing published for hour 2019-01-01T00"),
        ([window, "--domain", "xx"], "wikitop: error: the result has no rows for domain_code xx"),
        ([window, "--html", tmp_path / "no" / "r.html"], "wikitop: error: cannot write"),
    ]:
        done = run_wikitop("report", *args, "--out", root / "out", env=env)
        assert done.returncode == 1 and done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1


def test_report_command_names_the_extra_when_it_is_missing(tmp_path):
    hide_jinja2 = "import sys; sys.modules['jinja2'] = None; from wikitop.cli import run; run()"
    done = subprocess.run([sys.executable, "-c", hide_jinja2, "report", "2020-01-22T02", "--out", tmp_path],
                          capture_output=True, text=True, env=wikitop_env())
    assert done.returncode == 1
    assert done.stderr == "wikitop: error: the report needs Jinja2 and matplotlib: pip install 'wikitop[report]'\n"


def test_other_commands_do_not_import_the_report_libraries():
    check = ("import sys; from wikitop.cli import main; main(['show', '--help'], standalone_mode=False); "
             "sys.exit(any(name in sys.modules for name in ('jinja2', 'matplotlib', 'wikitop.publish.report')))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=wikitop_env())
    assert done.returncode == 0, done.stderr


def open_in_chromium(page: Path, workdir: Path) -> tuple[str, list[str], Path]:
    """The rendered DOM, the console messages and a screenshot of ``page``, with every host unresolvable."""
    screenshot = workdir / "page.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={workdir / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--enable-logging=stderr", "--v=0", "--window-size=1200,1600", "--dump-dom",
         f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    return done.stdout, console, screenshot


def colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24))


@needs_chromium
def test_the_console_check_sees_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><p>x</p><script>console.error("seen"); missing();</script>')
    _, console, _ = open_in_chromium(page, tmp_path)
    assert len(console) == 2 and '"seen"' in console[0] and "missing is not defined" in console[1]


@needs_chromium
def test_the_report_in_a_headless_browser(published_window, tmp_path):
    root, env, window = published_window
    page = tmp_path / "report.html"
    done = run_wikitop("report", window, "--out", root / "out", "--busiest", "4", "--limit", "8",
                       "--html", page, env=env)
    assert done.returncode == 0, done.stderr
    assert not re.search(r'(src|href)="(?!data:)', page.read_text()), "the page must load nothing"
    dom, console, screenshot = open_in_chromium(page, tmp_path)
    assert console == []
    assert len(re.findall(r'<table class="ranking">', dom)) == 4
    sparklines = re.findall(r'<img class="sparkline" src="data:image/svg\+xml;base64,([^"]+)"', dom)
    assert len(sparklines) == 32
    assert all(b"<path" in base64.b64decode(svg) for svg in sparklines)
    assert colours(screenshot) > 50  # text, bars and charts; a blank page has one colour
