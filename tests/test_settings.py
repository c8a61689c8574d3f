"""Settings from a command line's flags without the command line's parser (Settings.from_args),
as the Airflow DAG reads WIKITOP_HOUR_ARGS: the same Settings as `wikitop hour` makes."""

from __future__ import annotations

import click
import pytest

from wikitop.cli import hour as hour_command
from wikitop.settings import VALUE_FLAGS, BadSettings, Settings

ENVIRONMENT = {"SOURCE_URL_PREFIX": "./a ./b", "PATH_OUT_PREFIX": "s3://bucket/x", "AWS_REGION": "eu-west-1",
               "WIKITOP_RETRIES": "2", "SPARK_PROPERTIES": "spark.master=local[1]\nspark.ui.enabled=false"}
# A value for every variable the command reads, so that Settings.from_env cannot miss one.
EVERY_VARIABLE = {
    **ENVIRONMENT, "BLACKLIST_URL_IN": "list.txt", "FORCE_REPROCESS": "true", "WIKITOP_ENGINE": "spark",
    "WIKITOP_DUCKDB_MEMORY_LIMIT": "3GB", "WIKITOP_CACHE_DIR": "/tmp/cache", "WIKITOP_LAKE": "/tmp/lake",
    "WIKITOP_USER_AGENT": "me (me@example.org)", "WIKITOP_POLL_INTERVAL": "20s", "WIKITOP_RETRY_DELAY": "3s",
    "WIKITOP_STALL_TIMEOUT": "2m", "WIKITOP_DEADLINE": "1h",
}


def settings_of_the_command(args: list[str]) -> Settings:
    context = hour_command.make_context("wikitop hour", ["2020-01-22T02", *args])
    return Settings.from_options(context.params, keep_totals_default=False)


@pytest.mark.parametrize("args", [
    [],
    ["--format", "parquet", "--top", "50", "--ties=dense", "--strict", "--force", "-vv"],
    ["--source", "./m1", "--source=./m2", "--out", "./o", "--no-blacklist", "--blacklist", "x.txt", "--quiet"],
    ["--out", "s3://b/p", "--s3-endpoint-url", "http://127.0.0.1:9", "--storage-option", "anon=true",
     "--storage-option", "config_kwargs.read_timeout=60", "--s3-region", "us-east-2"],
    ["--spark-conf", "spark.master=local[2]", "--spark-conf", "spark.driver.memory=1g", "--engine", "spark"],
    ["--spark-properties", "a=1", "--keep-totals", "--no-keep-totals", "--keep-totals", "--cache-dir", "/tmp/c"],
    ["--wait", "3h", "--poll-interval", "30s", "--retries", "0", "--retry-delay", "2s", "--stall-timeout", "1m",
     "--deadline", "0", "--max-connections", "1", "--memory-limit", "2GB", "--user-agent", "me (me@example.org)"],
    ["--max-connections", "5", "--allow-more-connections"],
    ["--exclude-noise", "--namespace", "main", "--min-views=10", "--exclude", "List_of_*", "--exclude", "[!A-Z]*",
     "--group", "project"],
])
@pytest.mark.parametrize("environment", [{}, ENVIRONMENT, EVERY_VARIABLE], ids=["bare", "environment", "every"])
def test_flags_give_the_settings_the_command_gives(args, environment, monkeypatch):
    for name in EVERY_VARIABLE:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_args(args) == settings_of_the_command(args)


def test_every_variable_of_the_hour_command_has_a_value_in_the_tests():
    variables = {name for option in hour_command.params if isinstance(option, click.Option) and option.envvar
                 for name in ([option.envvar] if isinstance(option.envvar, str) else option.envvar)}
    assert variables == set(EVERY_VARIABLE)


def test_every_flag_of_the_hour_command_is_read():
    for option in hour_command.params:
        if not isinstance(option, click.Option):
            continue
        for flag in [*option.opts, *option.secondary_opts]:
            if option.is_flag or option.count:
                Settings.from_args([flag])
            else:
                assert flag in VALUE_FLAGS, f"Settings.from_args does not know {flag}"


@pytest.mark.parametrize(("args", "message"), [
    (["--frobnicate"], "no such flag: --frobnicate"),
    (["--top"], "--top needs a value"),
    (["--top", "many"], "--top: invalid literal"),
    (["--top", "0"], "top must be a whole number of at least 1"),
    (["--ties", "olympic"], "unknown tie rule 'olympic'"),
    (["--wait", "soon"], "--wait: 'soon' is not a duration"),
    (["--max-connections", "9"], "allows 3 connections per client"),
    (["2020-01-22T02"], "unexpected argument '2020-01-22T02'"),
    (["--strict=yes"], "no such flag: --strict=yes"),
    (["--storage-option", "secret"], "a --storage-option needs an = between its key and its value"),
    (["--namespace", "talk"], "namespace must be one of"),
    (["--min-views", "-1"], "min_views must be a non-negative integer"),
])
def test_flags_the_command_refuses_are_bad_settings(args, message):
    with pytest.raises(BadSettings, match=message.replace("[", r"\[")):
        Settings.from_args(args, environ={})
