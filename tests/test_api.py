"""The library's API: the README's example as written, typed errors, settings from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import wikitop
from conftest import HOUR, wikitop_env
from reference import read_pageviews
from reference import top_pages as reference_top

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no <!-- api-example --> python block"
    return match.group(1)


def test_the_readme_example_runs_as_written(tmp_path, mirror, real_hour):
    mirror.add(HOUR, real_hour)  # ./mirror, as the example names it
    (tmp_path / "example.py").write_text(readme_example())
    env = wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    top_ar_m, status, published = result.stdout.splitlines()
    assert top_ar_m.startswith("[{'domain_code': 'ar.m', 'page_title': 'الصفحة_الرئيسية', 'views': 2859, 'rank': 1}")
    assert status.startswith("done ") and status.endswith(".parquet")
    folder = tmp_path / "results/format=parquet/year=2020/month=01/day=22/hour=02"
    assert (folder / "_SUCCESS").exists()
    rows = pq.read_table(next(folder.glob("part-*.parquet"))).num_rows
    assert published == f"{rows} rows published"


def test_top_pages_matches_the_reference_and_publishes_nothing(tmp_path, mirror, real_hour, monkeypatch):
    mirror.add(HOUR, real_hour)
    monkeypatch.chdir(tmp_path)
    table = wikitop.top_pages(datetime(2020, 1, 22, 2, tzinfo=UTC), source=str(mirror.root), top=3, blacklist=None,
                              cache_dir=tmp_path / "cache")
    expected = reference_top(read_pageviews(real_hour)[0], set(), 3, "rank")
    assert list(zip(*(table.column(name).to_pylist() for name in table.column_names))) == expected
    assert not (tmp_path / "wikitop-out").exists()


def test_failures_raise_typed_errors(tmp_path, mirror):
    with pytest.raises(wikitop.NotPublished):
        wikitop.top_pages("2020-01-22T02", source=str(mirror.root), cache_dir=tmp_path)
    with pytest.raises(wikitop.NotPublished):
        wikitop.publish_result("2020-01-22T02", source=str(mirror.root), cache_dir=tmp_path, out=str(tmp_path / "o"))
    with pytest.raises(wikitop.HourError, match="not the start of an hour"):
        wikitop.top_pages("2020-01-22T02:30", source=str(mirror.root))
    with pytest.raises(wikitop.HourError, match="before it starts"):
        wikitop.top_pages(("2020-01-22T02", "2020-01-22T01"), source=str(mirror.root))
    with pytest.raises(wikitop.BadSettings, match="tie rule"):
        wikitop.top_pages("2020-01-22T02", source=str(mirror.root), ties="olympic")
    assert all(issubclass(error, wikitop.WikitopError) for error in (
        wikitop.NotPublished, wikitop.HourError, wikitop.BadSettings, wikitop.FetchError, wikitop.BlacklistError,
        wikitop.PublishError, wikitop.BadInput))
    with pytest.raises(wikitop.NotPublishedResult):
        wikitop.read_result(str(tmp_path / "o"), "2020-01-22T02")


def test_a_period_is_an_hour_its_day_or_a_window():
    hour = datetime(2020, 1, 22, 2, tzinfo=UTC)
    assert wikitop.Period.of("2020-01-22T02") == wikitop.Period.hour(hour)
    day = wikitop.Period.day(datetime(2020, 1, 22, tzinfo=UTC))
    assert wikitop.Period.of("2020-01-22T02", day=True) == day == wikitop.Period.of(day, day=True)
    assert wikitop.Period.of("2020-01-22T05:00+03:00", day=True) == day
    window = wikitop.Period.of("2020-01-22T02..2020-01-22T05")
    assert (window.kind, window.end) == ("window", datetime(2020, 1, 22, 5, tzinfo=UTC))
    with pytest.raises(wikitop.HourError, match="a day is named by one of its hours"):
        wikitop.Period.of("2020-01-22T02..2020-01-22T05", day=True)
    with pytest.raises(wikitop.HourError, match="cannot read hour"):
        wikitop.Period.of("2020-01-22T02..soon")


def test_settings_from_env_reads_the_command_lines_variables(tmp_path):
    env = {"SOURCE_URL_PREFIX": "./a ./b", "PATH_OUT_PREFIX": "s3://bucket/x", "AWS_REGION": "eu-west-1",
           "FORCE_REPROCESS": "true", "WIKITOP_RETRIES": "2", "WIKITOP_RETRY_DELAY": "30s",
           "WIKITOP_CACHE_DIR": str(tmp_path), "BLACKLIST_URL_IN": ""}
    settings = wikitop.Settings.from_env(env, top=7)
    assert settings.sources == ["./a", "./b"] and settings.out == "s3://bucket/x" and settings.force
    assert settings.storage_options == {"client_kwargs": {"region_name": "eu-west-1"}}
    assert (settings.retry_policy.retries, settings.retry_policy.backoff_base) == (2, 30.0)
    assert settings.cache_dir == tmp_path and settings.top == 7
    assert settings.blacklist == wikitop.Settings().blacklist  # an empty variable is no setting
    for bad, message in (({"FORCE_REPROCESS": "maybe"}, "neither true nor false"),
                         ({"WIKITOP_DUCKDB_MEMORY_LIMIT": "lots"}, "not a size"),
                         ({"WIKITOP_ENGINE": "pandas"}, "unknown engine")):
        with pytest.raises(wikitop.BadSettings, match=message):
            wikitop.Settings.from_env(bad)


def test_import_wikitop_loads_no_library_module():
    code = "import sys, wikitop; print(sorted(m for m in sys.modules if m.startswith(('wikitop.', 'pyarrow'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=dict(os.environ))
    assert result.stdout.strip() == "[]"
