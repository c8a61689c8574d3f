"""No secret of a URL (password, token) or of the storage options shows anywhere: errors,
log lines at every level, cache records, published markers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import HOUR, Mirror, wikitop_env
from dumpserver import DumpServer, Fault
from wikitop.hours import dump_relative_path
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
    assert missing.returncode == 1 and "not published" in missing.stderr
    assert "token=***" in failed.stderr + missing.stderr and "***@" in failed.stderr + missing.stderr
    for run in runs:
        assert_no_secret(run.stdout, run.stderr)
    written = files_under(cache) + files_under(out)
    assert any(path.name == "_SUCCESS" for path in written)
    assert any(path.name.endswith(".gz.json") for path in written)  # the cache's record of the download
    for path in written:
        assert_no_secret(path.read_bytes().decode("utf-8", "replace"))
