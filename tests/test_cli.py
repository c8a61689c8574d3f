"""The help pages: examples that parse, options under headings, value names, ``cache ls``."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from wikitop.cli import main

# What click shows for an option whose type it names itself: it says nothing of the value.
GENERIC_METAVARS = {"TEXT", "INTEGER", "FLOAT", "BOOLEAN", "UUID", "PATH", "DIRECTORY", "FILENAME",
                    "INTEGER RANGE", "FLOAT RANGE", "DATETIME"}


def walk(command: click.Command, path: tuple[str, ...] = ()):
    """(path, command) for ``command`` and every command and group under it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = dict(walk(main))


def help_text(*path: str) -> str:
    # 78: what click lays out for an 80-column terminal
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="wikitop", terminal_width=78)
    assert result.exit_code == 0, result.output
    return result.output


def sections(text: str) -> dict[str, list[str]]:
    """The help's sections, "Examples" and those click heads ("Options:", "Source:"...): their lines."""
    found: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if line == "  Examples:" or (line.endswith(":") and not line.startswith((" ", "Usage:"))):
            heading = line.strip()[:-1]
            found[heading] = []
        elif not line.strip():
            heading = None
        elif heading:
            found[heading].append(line)
    return found


def examples(text: str) -> list[str]:
    return [line.split("  # ")[0].strip() for line in sections(text).get("Examples", [])]


def parse(argv: list[str]) -> click.Context:
    """The context of the command ``argv`` names, its parameters parsed and converted as a run would."""
    ctx = main.make_context("wikitop", list(argv))
    command = main
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def command_path(ctx: click.Context) -> tuple[str, ...]:
    names = []
    while ctx.parent is not None:
        names.append(ctx.command.name)
        ctx = ctx.parent
    return tuple(reversed(names))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "wikitop")
def test_every_help_opens_with_examples_after_its_summary(path):
    lines = help_text(*path).splitlines()
    assert lines[0].startswith(f"Usage: {' '.join(['wikitop', *path])} ")
    assert lines[1] == "" and lines[2].startswith("  ") and lines[3] == "", "a one-line summary"
    assert lines[4] == "  Examples:"
    found = examples("\n".join(lines))
    assert 2 <= len(found) <= 3
    assert all(line.startswith(" ".join(["wikitop", *path])) for line in found)
    assert all(len(line) <= 80 for line in lines[4:5 + len(found)])


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "wikitop")
def test_every_example_parses(path):
    found = examples(help_text(*path))
    assert found
    for example in found:
        argv = shlex.split(example)[1:]
        ctx = parse(argv)
        assert command_path(ctx)[:len(path)] == path, example
        assert isinstance(ctx.command, click.Command) and not isinstance(ctx.command, click.Group), example


def test_an_example_with_an_unknown_option_fails_the_parse():
    with pytest.raises(click.NoSuchOption):
        parse(["hour", "2020-01-22T02", "--no-such-option"])


def test_hour_help_lists_every_option_once_under_headings_in_under_90_lines():
    text = help_text("hour")
    assert len(text.splitlines()) < 90
    found = sections(text)
    assert list(found) == ["Examples", "Source", "Output and storage", "Ranking", "Run", "Logging"]
    listed = [line.split()[0].rstrip(",") for heading, lines in found.items() if heading != "Examples"
              for line in lines if line.startswith("  -")]
    visible = [param.opts[0] for param in COMMANDS[("hour",)].params
               if isinstance(param, click.Option) and not param.hidden]
    assert sorted(listed) == sorted([*visible, "-h"])
    assert text.rstrip().endswith("Show this message and exit.")


def test_a_shared_option_has_one_heading_everywhere():
    headings: dict[str, set[str]] = {}
    for path in COMMANDS:
        for heading, lines in sections(help_text(*path)).items():
            for line in lines:
                if line.startswith("  --") and heading != "Options":
                    headings.setdefault(line.split()[0], set()).add(heading)
    assert headings["--out"] == {"Output and storage"} and headings["--source"] == {"Source"}
    assert all(len(found) == 1 for found in headings.values()), headings


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "wikitop")
def test_every_option_that_takes_a_value_names_it(path):
    command = COMMANDS[path]
    ctx = click.Context(command, info_name="wikitop")
    for param in command.params:
        if isinstance(param, click.Option) and (param.is_flag or param.count or param.hidden):
            continue
        assert param.make_metavar(ctx) not in GENERIC_METAVARS, param.name


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "wikitop")
def test_every_env_var_and_default_shows(path):
    text = " ".join(help_text(*path).split())
    for param in COMMANDS[path].params:
        if isinstance(param, click.Option) and not param.hidden and param.envvar:
            assert f"env var: {param.envvar}" in text, param.name


def test_defaults_show():
    text = " ".join(help_text("hour").split())
    for shown in ("default: ./wikitop-out", "default: 25", "default: 2GB", "default: 30m", "default: csv"):
        assert shown in text


def test_the_original_projects_env_vars_still_set_the_options(monkeypatch):
    monkeypatch.setenv("SOURCE_URL_PREFIX", "https://mirror.example/pageviews")
    monkeypatch.setenv("BLACKLIST_URL_IN", "https://mirror.example/blacklist")
    monkeypatch.setenv("PATH_OUT_PREFIX", "s3://bucket/tops")
    monkeypatch.setenv("EXECUTION_DATETIME", "2020-01-22T02")
    monkeypatch.setenv("HOURLY", "false")
    monkeypatch.setenv("FORCE_REPROCESS", "1")
    monkeypatch.setenv("SPARK_PROPERTIES", "spark.master=local[2]\nspark.executor.memory=2g")
    hour = parse(["hour"]).params
    assert hour["hour"] == datetime(2020, 1, 22, 2, tzinfo=UTC)
    assert hour["sources"] == ("https://mirror.example/pageviews",)
    assert hour["blacklist"] == "https://mirror.example/blacklist"
    assert hour["out"] == "s3://bucket/tops" and hour["force"] is True
    assert hour["spark_conf"] == {"spark.master": "local[2]", "spark.executor.memory": "2g"}
    assert parse(["range", "2020-01-22T00", "2020-01-22T23"]).params["hourly"] is False


def test_cache_ls_is_cache_list(tmp_path):
    dump = tmp_path / "pageviews" / "2020" / "2020-01" / "pageviews-20200122-030000.gz"
    dump.parent.mkdir(parents=True)
    dump.write_bytes(b"not checked by a listing")
    runner = CliRunner()
    listed = runner.invoke(main, ["cache", "--cache-dir", str(tmp_path), "list"])
    aliased = runner.invoke(main, ["cache", "--cache-dir", str(tmp_path), "ls"])
    assert listed.exit_code == aliased.exit_code == 0, aliased.output
    assert "pageviews-20200122-030000.gz" in listed.stdout and aliased.stdout == listed.stdout
    aliased_help, listed_help = help_text("cache", "ls").splitlines(), help_text("cache", "list").splitlines()
    assert aliased_help[0].replace("cache ls", "cache list") == listed_help[0] and aliased_help[1:] == listed_help[1:]


def test_cache_help_shows_ls_as_an_alias_of_list():
    commands = sections(help_text("cache"))["Commands"]
    assert [line.split("  ")[1] for line in commands] == ["list (ls)", "prune"]
