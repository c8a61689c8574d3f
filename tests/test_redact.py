"""No secret of a URL (password, token) or of the storage options shows anywhere: errors,
log lines at every level, cache records, published markers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import HOUR, Mirror, wikitop_env
from dumpserver import DumpServer, Fault
from wikitop.hours import ONE_HOUR, dump_relative_path
from wikitop.redact import redact, secrets_in_url

PASSWORD = "pa55-w0rd-xyz"
TOKEN = "tok3n-abc123"
HOUR_ARG = "2020-01-22T02"
FAST = ("--retries", "1", "--retry-delay", "0.05", "--stall-timeout", "2")


@pytest.mark.parametrize(("text", "expected"), [
    ("http://user:pw@host/a?b=1", "http://***@host/a?b=1"),
    ("s3://KEY:SECRET@bucket/prefix", "s3://***@bucket/prefix"),
    ("GET /x.gz?token=abc&access_token=d&page=2 failed", "GET /x.gz?token=***&access_token=***&page=2 failed"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=ff00&X-Amz-Date=2020",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=***"),
    ("?sig=a&signature=b&key=c&secret=d&password=e&api_key=f", "?sig=***&signature=***&key=***&secret=***"
     "&password=***&api_key=***"),
    ("'monkey=1', top=25, a_key_word", "'monkey=1', top=25, a_key_word"),
])
def test_redact_masks_userinfo_and_secret_parameters(text, expected):
    assert redact(text) == expected


def test_redact_masks_given_and_environment_secrets(monkeypatch):
    monkeypatch.setenv("SOME_API_TOKEN", "env-token-value")
    assert redact("a env-token-value b given-secret c", ["given-secret"]) == "a *** b *** c"


def test_secrets_in_url():
    assert secrets_in_url(f"http://u:{PASSWORD}@h/p?token={TOKEN}&page=2") == [PASSWORD, PASSWORD, TOKEN]
    assert secrets_in_url("http://h/p") == []


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text


def test_no_secret_of_a_source_or_blacklist_url_shows_anywhere(cli, tmp_path, real_hour, blacklist_file):
    site = Mirror(tmp_path / "site")
    site.add(HOUR, real_hour)
    shutil.copyfile(blacklist_file, site.root / "blacklist.txt")
    out, cache = tmp_path / "out", tmp_path / "cache"
    with DumpServer(site.root) as server:
        base = server.url.replace("http://", f"http://reader:{PASSWORD}@")
        source = f"{base}/?token={TOKEN}"
        blacklist = f"{base}/blacklist.txt?token={TOKEN}"
        # Failing first, every attempt logged (-vv), then succeeding with what is cached.
        server.add_faults(dump_relative_path(HOUR), Fault.status(500, count=2))
        env = wikitop_env(WIKITOP_CACHE_DIR=str(cache))
        args = ("--source", source, "--blacklist", blacklist, "--out", out, "-vv", *FAST)
        runs = [cli("hour", hour, *args, env=env) for hour in (HOUR_ARG, HOUR_ARG, "2020-01-22T05")]
        assert {r.path for r in server.requests} >= {"/blacklist.txt", f"/{dump_relative_path(HOUR)}"}
    failed, done, missing = runs
    assert failed.returncode == 1 and "HTTP 500" in failed.stderr and "wikitop: error:" in failed.stderr
    assert done.returncode == 0 and "done: 1450 rows" in done.stdout
    assert missing.returncode == 1 and "missing from every source" in missing.stderr
    assert "token=***" in failed.stderr + missing.stderr and "***@" in failed.stderr + missing.stderr
    for run in runs:
        assert_no_secret(run.stdout, run.stderr)
    written = files_under(cache) + files_under(out)
    assert any(path.name == "_SUCCESS" for path in written)
    assert any(path.name.endswith(".gz.json") for path in written)  # the cache's record of the download
    for path in written:
        assert_no_secret(path.read_bytes().decode("utf-8", "replace"))


def run_on_a_terminal(*args, env: dict) -> tuple[int, str, str]:
    """The CLI with its stdout on a pseudo-terminal (rich tables, as a user sees them), wide
    enough that no URL is folded across lines; returns the exit code, stdout and stderr."""
    import os
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "wikitop", *map(str, args)], stdout=secondary,
                               stderr=subprocess.PIPE, env={**env, "TERM": "xterm", "COLUMNS": "500"})
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 1 << 16)
        except OSError:  # the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    stderr = process.stderr.read().decode()
    return process.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace"), stderr


def test_no_secret_shows_in_the_summaries_of_a_range_or_window(cli, tmp_path, real_hour):
    """Every printer of outcomes: the summary tables (plain and on a terminal) of range and
    window, their -v log lines, ls --json and the markers, with one hour failed and one missing."""
    site = Mirror(tmp_path / "site")
    site.add(HOUR, real_hour)
    site.add(HOUR + ONE_HOUR, real_hour)
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = wikitop_env(WIKITOP_CACHE_DIR=str(cache), COLUMNS="500")  # no URL folded across lines
    with DumpServer(site.root) as server:
        source = server.url.replace("http://", f"http://alice:{PASSWORD}@") + f"/?token={TOKEN}"
        server.add_faults(dump_relative_path(HOUR + ONE_HOUR), Fault.status(500, count=100))
        args = ("--source", source, "--out", out, "-v", *FAST)
        span = ("2020-01-22T02", "2020-01-22T04")
        runs = [cli("range", *span, *args, env=env), cli("window", *span, "--allow-incomplete", *args, env=env)]
        terminal = [run_on_a_terminal(command, *span, *args, "--force", env=env) for command in ("range", "window")]
    listing = cli("ls", "--json", "--out", out, env=env)
    for run in runs:
        assert run.returncode == 1 and "HTTP 500" in run.stdout and "missing from every source" in run.stdout
        assert "***@" in run.stdout and "token=***" in run.stdout
        assert_no_secret(run.stdout, run.stderr)
    for code, stdout, stderr in terminal:
        assert code == 1 and "HTTP 500" in stdout and "***@" in stdout, stdout
        assert_no_secret(stdout, stderr)
    assert listing.returncode == 0
    assert_no_secret(listing.stdout, listing.stderr)
    for path in files_under(out):
        assert_no_secret(path.read_bytes().decode("utf-8", "replace"))


def test_a_wikitop_error_shows_no_secret_however_it_is_printed():
    from wikitop.errors import WikitopError
    from wikitop.model import Period
    from wikitop.pipeline import Outcome, Status

    error = WikitopError(f"http://alice:{PASSWORD}@host/x.gz?token={TOKEN} failed")
    outcome = Outcome(Period.hour(HOUR), Status.FAILED, f"{ValueError(f'http://a:{PASSWORD}@h/?token={TOKEN}')}")
    assert_no_secret(str(error), f"{error}", outcome.message, repr(outcome))
