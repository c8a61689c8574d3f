"""`wikitop hour` as a user runs it, checked against the independent reference."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reference
import wikitop
from conftest import HOUR, wikitop_env
from dumpserver import DumpServer, Fault

HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"


def published(out, partition=PARTITION):
    folder = out / partition
    marker = json.loads((folder / "_SUCCESS").read_text())
    data = (folder / marker["file"]).read_bytes()
    return marker, data


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(data).decode("utf-8"))))


def test_real_hour_from_a_mirror_matches_the_reference(cli, mirror, real_hour, blacklist_file, tmp_path):
    mirror.add(HOUR, real_hour)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out)
    assert result.returncode == 0, result.stderr
    marker, data = published(out)
    assert csv_rows(data) == reference.expected_csv_rows(real_hour, blacklist_file)
    assert marker["inputs"][0]["file"] == "pageviews-20200122-030000.gz"
    assert marker["blacklist"]["removed_pages"] == 127
    assert marker["lines"] == {"good": 90038, "bad": {}, "bad_total": 0}
    assert "stamped one hour later" in marker["hour_rule"]


@pytest.mark.parametrize("ties", ["rank", "dense", "row"])
def test_generated_hour_over_http_matches_the_reference(cli, tmp_path, mirror, generated_hour, blacklist_file, ties):
    mirror.add(HOUR, generated_hour)
    out = tmp_path / "out"
    with DumpServer(mirror.root) as server:
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, "--ties", ties, "--top", "10")
        user_agents = {r.user_agent for r in server.requests}
    assert result.returncode == 0, result.stderr
    marker, data = published(out)
    assert csv_rows(data) == reference.expected_csv_rows(generated_hour, blacklist_file, top=10, ties=ties)
    _, expected_bad = reference.read_pageviews(generated_hour)
    assert marker["lines"]["bad"] == expected_bad
    assert len(expected_bad) == 6
    assert all(ua.startswith("wikitop/") and "@" in ua for ua in user_agents)


def test_rank_ties_can_list_more_than_top_rows(cli, tmp_path, mirror):
    lines = "".join(f"en Page_{i} {v} 0\n" for i, v in enumerate([9, 5, 5, 5, 1]))
    dump = tmp_path / "ties.gz"
    dump.write_bytes(gzip.compress(lines.encode()))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    assert cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--top", "2", "--no-blacklist").returncode == 0
    assert csv_rows(published(out)[1])[1:] == [
        ["en", "Page_0", "9", "1"], ["en", "Page_1", "5", "2"], ["en", "Page_2", "5", "2"], ["en", "Page_3", "5", "2"]
    ]


def test_spark_era_quoted_titles_are_unquoted(cli, tmp_path, mirror, spark_era_hour):
    mirror.add(HOUR, spark_era_hour)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist", "--top", "1000")
    assert result.returncode == 0
    rows = csv_rows(published(out)[1])
    assert rows == reference.expected_csv_rows(spark_era_hour, None, top=1000)
    titles = [row[1] for row in rows]
    assert any('"' in t for t in titles) and not any(t.startswith('"\\"') for t in titles)


def test_titles_with_commas_quotes_and_backslashes_survive_csv(cli, tmp_path, mirror):
    titles = ['a,b', 'say_"hi"', 'back\\slash', '"Heroes"', "it's", "x%41y"]
    dump = tmp_path / "odd.gz"
    dump.write_bytes(gzip.compress("".join(f"en {t} {i + 1} 0\n" for i, t in enumerate(sorted(titles))).encode()))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    assert cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist").returncode == 0
    assert sorted(row[1] for row in csv_rows(published(out)[1])[1:]) == sorted(titles)


def test_formats_hold_the_same_rows(cli, tmp_path, mirror, generated_hour):
    import pyarrow.parquet as pq

    mirror.add(HOUR, generated_hour)
    out = tmp_path / "out"
    for fmt in ("csv", "parquet", "jsonl"):
        assert cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--format", fmt).returncode == 0
    csv_data = [[d, t, int(v), int(r)] for d, t, v, r in csv_rows(published(out)[1])[1:]]
    _, parquet_data = published(out, PARTITION.replace("csv", "parquet"))
    table = pq.read_table(io.BytesIO(parquet_data))
    assert [list(row.values()) for row in table.to_pylist()] == csv_data
    _, jsonl_data = published(out, PARTITION.replace("csv", "jsonl"))
    lines = gzip.decompress(jsonl_data).decode().splitlines()
    assert [list(json.loads(line).values()) for line in lines] == csv_data


def test_rerun_is_a_no_op_unless_forced_or_parameters_change(cli, tmp_path, mirror, real_hour):
    mirror.add(HOUR, real_hour)
    out = tmp_path / "out"
    args = ("hour", HOUR_ARG, "--source", mirror.root, "--out", out)
    assert cli(*args).returncode == 0
    marker_path = out / PARTITION / "_SUCCESS"
    first_marker = marker_path.read_text()
    _, first_data = published(out)

    again = cli(*args)
    assert again.returncode == 0 and "already done" in again.stdout
    assert marker_path.read_text() == first_marker

    forced = cli(*args, "--force")
    assert forced.returncode == 0 and "done" in forced.stdout
    assert marker_path.read_text() != first_marker
    assert published(out)[1] == first_data  # the same bytes every time

    changed = cli(*args, "--top", "3")
    assert changed.returncode == 0 and "already" not in changed.stdout
    assert json.loads(marker_path.read_text())["params"]["top"] == 3
    assert [p.name for p in (out / PARTITION).iterdir()].count("_SUCCESS") == 1
    assert len(list((out / PARTITION).glob("part-*"))) == 1


def test_environment_variables_of_the_original_project(tmp_path, mirror, real_hour):
    mirror.add(HOUR, real_hour)
    out = tmp_path / "out"
    env = wikitop_env(SOURCE_URL_PREFIX=str(mirror.root), PATH_OUT_PREFIX=str(out),
                      EXECUTION_DATETIME="2020-01-22T02:00:00+00:00", WIKITOP_CACHE_DIR=str(tmp_path / "c"))
    from conftest import run_wikitop

    assert run_wikitop("hour", env=env).returncode == 0
    assert (out / PARTITION / "_SUCCESS").exists()
    assert "already done" in run_wikitop("hour", env=env).stdout
    forced = run_wikitop("hour", env=dict(env, FORCE_REPROCESS="true"))
    assert forced.returncode == 0 and "already" not in forced.stdout


def test_strict_fails_on_bad_lines_and_publishes_nothing(cli, tmp_path, mirror, generated_hour):
    mirror.add(HOUR, generated_hour)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--strict")
    assert result.returncode == 1
    assert "bad lines" in result.stderr and "Traceback" not in result.stderr
    assert not (out / PARTITION).exists() or not any((out / PARTITION).iterdir())


def test_missing_hour_names_the_hour_and_file(cli, tmp_path, mirror):
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert "2020-01-22T02" in result.stderr and "pageviews-20200122-030000.gz" in result.stderr
    assert "is missing from every source" in result.stderr and "Traceback" not in result.stderr
    assert "not published (yet)" not in result.stderr  # 2020 is not late


def test_missing_hour_over_http(cli, tmp_path, mirror):
    with DumpServer(mirror.root) as server:
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", tmp_path / "out")
    assert result.returncode == 1 and "is missing from every source" in result.stderr


@pytest.mark.parametrize(
    "args, message, code",
    [
        (("hour", "2020-13-01T00"), "month must be in 1..12", 2),
        (("hour", "2014-01-01T00"), "before the pageview dumps begin", 2),
        (("hour", "2999-01-01T00"), "not over yet", 2),
        (("range", "2014-01-01T00", "2014-01-01T02"), "before the pageview dumps begin", 2),
        (("window", "2020-01-22T02", "2999-01-01T00"), "not over yet", 2),
        (("ingest", "2014-01-01T00", "2014-01-01T02"), "before the pageview dumps begin", 2),
        (("hour", "2020-01-22T02", "--top", "0"), "--top", 2),
        (("hour", "2020-01-22T02", "--ties", "random"), "--ties", 2),
        (("hour", "2020-01-22T02", "--max-connections", "5"), "allow-more-connections", 2),
        (("hour", "2020-01-22T02", "--source", "ftp://example.org/x"), "unsupported source", 2),
        (("hour", "2020-01-22T02", "--memory-limit", "lots"), "is not a size", 2),
        # A mirror that is not there may be a share not mounted yet: a failure, not bad usage.
        (("hour", "2020-01-22T02", "--source", "no/such/mirror"), "the mirror no/such/mirror is not a directory", 1),
    ],
)
def test_bad_usage_gets_one_clear_line(cli, tmp_path, args, message, code):
    result = cli(*args, "--out", tmp_path / "out")
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(cli, tmp_path):
    assert cli("hour", "nonsense").returncode == 2
    assert cli("hour", "2020-01-22T02", "--format", "xml").returncode == 2


def test_the_quick_exit_loses_no_output(cli, tmp_path):
    """The console script ends without the interpreter's teardown: what it wrote to a pipe
    (block-buffered, as without PYTHONUNBUFFERED) arrives whole, and the exit code is kept."""
    env = {k: v for k, v in wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "cache")).items() if k != "PYTHONUNBUFFERED"}
    result = cli("range", "--help", env=env)
    assert result.returncode == 0 and "--allow-incomplete" in result.stdout
    assert result.stdout.rstrip().endswith("Show this message and exit.")  # the last line of the help
    result = cli("--version", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, f"wikitop, version {wikitop.__version__}")
    result = cli("hour", "2020-01-22T02", "--source", "no/such/mirror", "--out", tmp_path / "out", env=env)
    assert result.returncode == 1 and result.stderr.startswith("wikitop: error:")


def test_corrupt_mirror_file_fails_without_publishing(cli, tmp_path, mirror, real_hour):
    broken = tmp_path / "broken.gz"
    data = real_hour.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    mirror.add(HOUR, broken)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out)
    # Raised while DuckDB reads the pieces, and reported as it was raised.
    assert result.returncode == 1
    assert result.stderr.startswith(f"wikitop: error: {HOUR_ARG}: CorruptDump: pageviews-20200122-030000.gz is corrupt")
    assert not (out / PARTITION / "_SUCCESS").exists()


def test_a_killed_run_keeps_the_earlier_result(tmp_path, mirror, real_hour):
    """Kill -9 a forced rerun in the middle of its download: the first result stays whole."""
    mirror.add(HOUR, real_hour)
    out = tmp_path / "out"
    env = wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "cache"))
    with DumpServer(mirror.root) as server:
        from conftest import run_wikitop

        assert run_wikitop("hour", HOUR_ARG, "--source", server.url, "--out", out, env=env).returncode == 0
        before = {p.name: p.read_bytes() for p in (out / PARTITION).iterdir()}
        server.add_faults(".gz", Fault.stall_after(1000, seconds=30))
        process = subprocess.Popen(
            [sys.executable, "-m", "wikitop", "hour", HOUR_ARG, "--source", server.url, "--out", str(out),
             "--force", "--cache-dir", str(tmp_path / "other-cache")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not any(r.method == "GET" for r in server.requests[1:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    after = {p.name: p.read_bytes() for p in (out / PARTITION).iterdir()}
    assert after == before


def test_lines_that_readers_disagree_on_match_the_reference(cli, tmp_path, mirror, edge_case_hour):
    mirror.add(HOUR, edge_case_hour)
    out = tmp_path / "out"
    assert cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist", "--top", "50").returncode == 0
    marker, data = published(out)
    assert csv_rows(data) == reference.expected_csv_rows(edge_case_hour, None, top=50)
    assert marker["lines"]["bad"] == reference.read_pageviews(edge_case_hour)[1]
    assert ["en", "lone\rcr", "1"] in [row[:3] for row in csv_rows(data)]


@pytest.mark.parametrize("content", [b"", b"\n", b"en bad\xff_utf8 2 0\n", b"en short 3\n"])
def test_an_hour_without_good_lines_fails_unless_an_empty_top_is_allowed(cli, tmp_path, mirror, content):
    """A valid gzip with no pageview line is a broken publication, not a quiet hour: it fails,
    publishing nothing and leaving nothing in the lake, unless --allow-empty is given."""
    dump = tmp_path / "nothing.gz"
    dump.write_bytes(gzip.compress(content))
    served = mirror.add(HOUR, dump)
    out, lake = tmp_path / "out", tmp_path / "lake"
    args = ("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--lake", lake, "--keep-totals")
    refused = cli(*args)
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"wikitop: error: {HOUR_ARG}: pageviews-20200122-030000.gz has no pageview line (")
    assert line.endswith("); --allow-empty publishes an empty top for it")
    assert not list(out.rglob("_SUCCESS")) and not list(lake.rglob("_SUCCESS"))

    allowed = cli(*args, "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    marker, data = published(out)
    assert csv_rows(data) == [reference.CSV_HEADER]
    assert marker["lines"]["good"] == 0
    assert marker["lines"]["bad"] == reference.read_pageviews(dump)[1]

    # The lake now holds the empty hour; ranking it again, with no dump anywhere, asks the same consent.
    served.unlink()
    again = ("hour", HOUR_ARG, "--source", mirror.root, "--out", tmp_path / "again", "--lake", lake)
    from_lake = cli(*again)
    assert from_lake.returncode == 1 and "has no pageview line" in from_lake.stderr
    assert not list((tmp_path / "again").rglob("_SUCCESS"))
    assert cli(*again, "--allow-empty").returncode == 0
    assert csv_rows(published(tmp_path / "again")[1]) == [reference.CSV_HEADER]


def test_bad_lines_are_counted_by_kind_and_take_no_good_line_with_them(cli, tmp_path, mirror):
    lines = [b"en Good_1 5 0", b"", b"en short 3", b"en too many 3 0", b"en letters abc 0", b"en neg -4 0",
             b"en zero_lead 05 0", b" empty_domain 3 0", b"en bad\xff_utf8 2 0", b"en huge 99999999999999999999 0",
             b"en Good_2 7 0", b"en big 9223372036854775807 0"]
    dump = tmp_path / "bad.gz"
    dump.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    assert cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist").returncode == 0
    marker, data = published(out)
    assert marker["lines"]["bad"] == reference.read_pageviews(dump)[1] == {
        "empty_line": 1, "wrong_field_count": 2, "invalid_count": 3, "negative_count": 1,
        "empty_domain_code": 1, "invalid_utf8": 1}
    assert marker["lines"]["good"] == 3
    assert csv_rows(data)[1:] == [["en", "big", "9223372036854775807", "1"], ["en", "Good_2", "7", "2"],
                                  ["en", "Good_1", "5", "3"]]


def test_a_line_of_64_mb_is_one_bad_line(cli, tmp_path, mirror):
    dump = tmp_path / "huge_line.gz"
    dump.write_bytes(gzip.compress(b"en Before 1 0\nen " + b"x" * (64 << 20) + b" 2 0\nen After 3 0\n"))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist")
    assert result.returncode == 0, result.stderr
    marker, data = published(out)
    assert marker["lines"]["bad"] == reference.read_pageviews(dump)[1] == {"line_too_long": 1}
    assert csv_rows(data) == reference.expected_csv_rows(dump, None, top=25)


def test_repeated_pairs_add_up_exactly_to_2_to_the_63_minus_1(cli, tmp_path, mirror):
    dump = tmp_path / "repeated.gz"
    dump.write_bytes(gzip.compress(b"en Max 4611686018427387904 0\nen Other 3 0\nen Max 4611686018427387903 0\n"))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist")
    assert result.returncode == 0, result.stderr
    assert csv_rows(published(out)[1])[1:] == [["en", "Max", str(2**63 - 1), "1"], ["en", "Other", "3", "2"]]


@pytest.mark.parametrize(("lines", "listing", "page"), [
    (b"en Foo 9223372036854775807 0\nen Bar 1 0\nen Foo 1 0\n", (), "en/Foo"),
    (b"en Foo 4611686018427387904 0\nen Bar 1 0\nen.m Foo 4611686018427387904 0\n", ("--group", "project"),
     "en.wikipedia/Foo"),
    (b"en Foo 9223372036854775807 0\nen Bar 1 0\nen Foo 1 0\n", ("--namespace", "main"), "en/Foo"),
], ids=["domain-codes", "projects", "main-namespace"])
def test_views_past_2_to_the_63_minus_1_fail_in_one_line_and_publish_nothing(cli, tmp_path, mirror, lines, listing,
                                                                             page):
    dump = tmp_path / "overflowing.gz"
    dump.write_bytes(gzip.compress(lines))
    mirror.add(HOUR, dump)
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist", *listing)
    assert result.returncode == 1
    assert result.stderr == f"wikitop: error: {HOUR_ARG}: the views of {page} add up to more than 2^63-1\n"
    assert not (out / PARTITION).exists() or not any((out / PARTITION).iterdir())


def test_a_run_of_repeated_lines_is_summed_within_the_memory_limit(tmp_path):
    """4M lines of one pair: too many to check their pairs for repeats outside DuckDB within
    a limit of 64 MB, so they are summed inside it; the memory the check takes is measured
    from the peak it leaves (reset first, /proc/self/clear_refs)."""
    dump = tmp_path / "repeated.gz"
    dump.write_bytes(gzip.compress(b"en Foo 2 0\n" * 4_000_000 + b"en Bar 3 0\n", compresslevel=1))
    script = """
import json, sys
from wikitop.rank.blacklist import empty_blacklist
from wikitop.rank.duckdb_engine import DuckDBEngine

def memory_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field))

growth = []
line_report = DuckDBEngine._line_report

def measured_line_report(*args):
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current VmRSS
    before = memory_mb("VmRSS:")
    try:
        return line_report(*args)
    finally:
        growth.append(memory_mb("VmHWM:") - before)

DuckDBEngine._line_report = measured_line_report
result = DuckDBEngine(memory_limit="64MB").process_hour(sys.argv[1], empty_blacklist(), 5, "rank")
print(json.dumps({"rows": result.table.to_pylist(), "growth_mb": growth}))
"""
    done = subprocess.run([sys.executable, "-c", script, str(dump)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == [{"domain_code": "en", "page_title": "Foo", "views": 8_000_000, "rank": 1},
                              {"domain_code": "en", "page_title": "Bar", "views": 3, "rank": 2}]
    [growth] = report["growth_mb"]
    assert growth < 16, growth


def test_duckdb_draws_no_progress_bar_into_the_output():
    script = """
from wikitop.rank.duckdb_engine import DuckDBEngine
con = DuckDBEngine()._connect()
con.execute("SET progress_bar_time = 0")  # what a query of more than 2 s would meet
con.sql("SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS k FROM range(300000) AS t(i) ORDER BY k)").fetchall()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_duckdb_spills_past_its_memory_limit_into_a_private_folder():
    from wikitop.rank import create_engine

    engine = create_engine("duckdb", memory_limit="100MB")
    with engine._connect() as con:
        [(limit, spill_dir)] = con.sql(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()
        # A sort larger than the limit completes by spilling to disk.
        [(rows,)] = con.sql(
            "SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS k FROM range(3000000) AS t(i) ORDER BY k)"
        ).fetchall()
    # Two hours may be computed at once, each on a connection with half the limit.
    assert limit.endswith("MiB") and float(limit.split()[0]) < 50
    assert Path(spill_dir).parent == engine.spill_dir and rows == 3_000_000
    engine.close()
    assert not engine.spill_dir.exists()
