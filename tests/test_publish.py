"""The result store on a local disk and other fsspec file systems, and the show and ls commands."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from filelock import FileLock

from conftest import HOUR, stall_after_data
from wikitop.model import RESULT_SCHEMA
from wikitop.publish.results import NotPublishedResult, list_published, pick_rows, read_published
from wikitop.publish.store import (
    FORMATS,
    MARKER,
    Period,
    PublishError,
    ResultStore,
    deserialize,
    serialize,
)
from wikitop.settings import storage_options_from_flags
from wikitop.storage import describe_storage_error

PERIOD = Period.hour(HOUR)
LOCK = MARKER + ".lock"
AWKWARD_TITLES = [
    "a,b", 'say_"hi"', "back\\slash", '"Heroes"', "it's", "x%41y", "Ελληνικά", "😀_emoji", "tab\there",
    "new\nline", "", "semi;colon", "{json}", "\\N", "null", "carriage\rreturn", "crlf\r\n", "line\u2028separator",
    "next\x85line",
]


def result_table(rows: list[tuple[str, str, int, int]]) -> pa.Table:
    return pa.table(dict(zip(RESULT_SCHEMA.names, map(list, zip(*rows)))), schema=RESULT_SCHEMA)


TABLE = result_table([("de", "Hauptseite", 50, 1), ("en", "Main_Page", 90, 1), ("en", "Cat", 7, 2)])
METADATA = {"period": PERIOD.metadata(), "params": {"top": 25}, "rows": 3}


def files(store: ResultStore, fmt: str = "csv") -> list[str]:
    """The folder's files but the empty lock file that publishing runs take turns with."""
    names = (path.rpartition("/")[2] for path in store.fs.ls(store.folder(PERIOD, fmt), detail=False))
    return sorted(name for name in names if name != LOCK)


@pytest.mark.parametrize("fmt", FORMATS)
def test_serialize_gives_the_same_bytes_every_time(fmt):
    first = serialize(TABLE, fmt)
    assert serialize(TABLE, fmt) == first
    assert serialize(TABLE.select(["rank", "views", "page_title", "domain_code"]), fmt) == first


@pytest.mark.parametrize("fmt", FORMATS)
def test_awkward_titles_survive_every_format(fmt):
    table = result_table([("en", title, 100 - i, i + 1) for i, title in enumerate(AWKWARD_TITLES)])
    assert deserialize(serialize(table, fmt), fmt).equals(table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_result_survives_every_format(fmt):
    empty = RESULT_SCHEMA.empty_table()
    assert deserialize(serialize(empty, fmt), fmt).equals(empty)


def test_publish_then_read_back(tmp_path):
    store = ResultStore(str(tmp_path / "out"))
    path = store.publish(PERIOD, "csv", TABLE, METADATA)
    marker, table = store.read_result(PERIOD, "csv")
    assert table.equals(TABLE)
    assert path.endswith(marker["file"]) and marker["format"] == "csv" and marker["params"] == {"top": 25}
    assert files(store) == [MARKER, marker["file"]]
    assert (folder_path(tmp_path, store) / LOCK).stat().st_size == 0
    assert store.markers() == [(store.folder(PERIOD, "csv"), marker)]


def fail_marker_writes(monkeypatch) -> list[str]:
    """Make writing a marker fail, as if the run died just before; returns the names written."""
    written = []
    write = ResultStore._write

    def write_but_fail_on_marker(self, path, data):
        written.append(path.rpartition("/")[2])
        if path.endswith(MARKER):
            raise OSError("disk full")
        write(self, path, data)

    monkeypatch.setattr(ResultStore, "_write", write_but_fail_on_marker)
    return written


def folder_path(tmp_path, store: ResultStore, fmt: str = "csv"):
    return tmp_path / "out" / store.folder(PERIOD, fmt).rpartition("/out/")[2]


def test_the_marker_is_written_last_and_alone_makes_a_result(tmp_path, monkeypatch):
    store = ResultStore(str(tmp_path / "out"))
    written = fail_marker_writes(monkeypatch)
    with pytest.raises(PublishError, match="cannot publish to .*disk full"):
        store.publish(PERIOD, "csv", TABLE, METADATA)
    assert written[-1] == MARKER and written[0].startswith("part-")
    assert files(store) == [written[0]]  # the data file alone ...
    assert store.read_marker(PERIOD, "csv") is None  # ... is not a result
    assert store.read_result(PERIOD, "csv") is None
    assert store.markers() == []


def test_a_failed_publish_keeps_the_earlier_result_and_the_next_one_cleans_up(tmp_path, monkeypatch):
    store = ResultStore(str(tmp_path / "out"))
    store.publish(PERIOD, "csv", TABLE, METADATA)
    other = TABLE.slice(0, 2)
    with monkeypatch.context() as patch:
        fail_marker_writes(patch)
        with pytest.raises(PublishError):
            store.publish(PERIOD, "csv", other, METADATA)
    assert len([name for name in files(store) if name.startswith("part-")]) == 2
    assert store.read_result(PERIOD, "csv")[1].equals(TABLE)

    folder = folder_path(tmp_path, store)
    (folder / ".part-dead.csv.gz.0123.tmp").write_bytes(b"half")
    (folder / "notes.txt").write_text("not ours")
    store.publish(PERIOD, "csv", other, METADATA)
    marker, table = store.read_result(PERIOD, "csv")
    assert table.equals(other)
    assert files(store) == sorted([MARKER, marker["file"], "notes.txt"])


def test_publishing_in_a_local_folder_waits_for_another_run_publishing_there(tmp_path):
    store = ResultStore(str(tmp_path / "out"))
    folder = Path(store.folder(PERIOD, "csv"))
    folder.mkdir(parents=True)
    with FileLock(folder / LOCK):  # another run publishing the same result
        publishing = threading.Thread(target=store.publish, args=(PERIOD, "csv", TABLE, METADATA))
        publishing.start()
        time.sleep(0.3)
        assert publishing.is_alive() and files(store) == []
    publishing.join(10)
    assert store.read_result(PERIOD, "csv")[1].equals(TABLE)


def test_cleaning_up_spares_what_another_run_published_meanwhile(tmp_path):
    """On an object store runs cannot take turns: a run that published A and is about to clean
    up must not delete the data file B that a run with other parameters published since."""
    store = ResultStore(str(tmp_path / "out"))
    store.publish(PERIOD, "csv", TABLE, METADATA)
    folder = folder_path(tmp_path, store)
    ours = json.loads((folder / MARKER).read_text())["file"]
    started = datetime.now(UTC)
    other = TABLE.slice(0, 1)
    ResultStore(str(tmp_path / "out")).publish(PERIOD, "csv", other, dict(METADATA, params={"top": 1}))
    theirs = json.loads((folder / MARKER).read_text())["file"]
    store._remove_leftovers(store.folder(PERIOD, "csv"), keep=ours, started_before=started)
    assert files(store) == sorted([MARKER, theirs])  # the other run removed ours, rightly
    assert store.read_result(PERIOD, "csv")[1].equals(other)


def assert_one_whole_result(url: str, table: pa.Table, top: int) -> None:
    store = ResultStore(url)
    marker, published = store.read_result(PERIOD, "csv")
    assert published.equals(table) and marker["params"]["top"] == top
    assert [folder for folder, _ in store.markers()] == [store.folder(PERIOD, "csv")]


def test_a_run_whose_data_file_another_removed_before_its_marker_puts_it_back():
    """Without a lock on object stores: run A uploads its data file and stalls; run B, with
    other parameters, publishes and removes A's file as a leftover older than its start;
    then A writes its marker, which would name a removed file."""
    url = "memory://wikitop-race-1/results"
    slow = ResultStore(url)
    uploaded, resume = stall_after_data(slow)
    publishing = threading.Thread(target=slow.publish, args=(PERIOD, "csv", TABLE, METADATA))
    publishing.start()
    assert uploaded.wait(30)
    ResultStore(url).publish(PERIOD, "csv", TABLE.slice(0, 1), dict(METADATA, params={"top": 1}))
    resume.set()
    publishing.join(30)
    assert_one_whole_result(url, TABLE, 25)


def test_a_run_that_removed_the_file_another_just_named_puts_its_own_back(monkeypatch):
    """Run B uploads its data file and stalls; run A publishes and, cleaning up, lists B's file
    as a leftover; B then writes its marker and checks it; only then A removes B's file."""
    url = "memory://wikitop-race-2/results"
    stalled = ResultStore(url)
    uploaded, resume = stall_after_data(stalled)
    args = (PERIOD, "csv", TABLE.slice(0, 1), dict(METADATA, params={"top": 1}))
    publishing = threading.Thread(target=stalled.publish, args=args)
    publishing.start()
    assert uploaded.wait(30)
    cleaning = ResultStore(url)
    remove = cleaning.fs.rm_file

    def remove_once_the_other_is_done(path: str) -> None:
        resume.set()
        publishing.join(30)
        remove(path)

    monkeypatch.setattr(cleaning.fs, "rm_file", remove_once_the_other_is_done)
    cleaning.publish(PERIOD, "csv", TABLE, METADATA)
    assert not publishing.is_alive()
    assert_one_whole_result(url, TABLE, 25)


def test_a_marker_whose_data_file_is_gone_is_not_listed(tmp_path):
    store = ResultStore(str(tmp_path / "out"))
    store.publish(PERIOD, "csv", TABLE, METADATA)
    next_hour = Period.hour(datetime(2020, 1, 22, 3, tzinfo=UTC))
    store.publish(next_hour, "csv", TABLE, dict(METADATA, period=next_hour.metadata()))
    (folder_path(tmp_path, store) / json.loads((folder_path(tmp_path, store) / MARKER).read_text())["file"]).unlink()
    assert [marker["period"]["start"] for _, marker in store.markers()] == ["2020-01-22T03"]
    assert [entry["period"] for entry in list_published(store)] == ["2020-01-22T03"]


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'{"no": "file"}'])
def test_an_unreadable_marker_is_no_result(tmp_path, content):
    store = ResultStore(str(tmp_path / "out"))
    store.publish(PERIOD, "csv", TABLE, METADATA)
    next_hour = Period.hour(datetime(2020, 1, 22, 3, tzinfo=UTC))
    store.publish(next_hour, "csv", TABLE, dict(METADATA, period=next_hour.metadata()))
    (folder_path(tmp_path, store) / MARKER).write_bytes(content)
    assert store.read_marker(PERIOD, "csv") is None
    assert [marker["period"]["start"] for _, marker in store.markers()] == ["2020-01-22T03"]


def test_any_fsspec_url_works(tmp_path):
    store = ResultStore("memory://wikitop-test/results")
    store.publish(PERIOD, "parquet", TABLE, METADATA)
    assert store.read_result(PERIOD, "parquet")[1].equals(TABLE)
    assert store.location.startswith("memory://") and store.location.endswith("/wikitop-test/results")
    assert [folder.rpartition("/format=")[2] for folder, _ in store.markers()] == [
        "parquet/year=2020/month=01/day=22/hour=02"
    ]


def test_an_unknown_protocol_is_a_clear_error():
    with pytest.raises(PublishError, match="cannot use nosuchfs://x"):
        ResultStore("nosuchfs://x")


def test_storage_options_from_flags():
    assert storage_options_from_flags("s3://b/p", "http://127.0.0.1:9000", "eu-west-1") == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}
    }
    assert storage_options_from_flags("/tmp/out", "http://127.0.0.1:9000", "eu-west-1") == {}
    options = storage_options_from_flags(
        "s3://b/p", region="r1",
        pairs=["profile=work", "anon=false", "config_kwargs.read_timeout=60", "client_kwargs.region_name=r2",
               "config_kwargs.retries={\"total_max_attempts\": 5}"],
    )
    assert options == {
        "client_kwargs": {"region_name": "r2"},
        "profile": "work",
        "anon": False,
        "config_kwargs": {"read_timeout": 60, "retries": {"total_max_attempts": 5}},
    }
    for bad in ("noequals", "=value", "profile=x,profile.sub=y"):
        with pytest.raises(ValueError):
            storage_options_from_flags("s3://b/p", pairs=bad.split(","))
    with pytest.raises(ValueError) as caught:
        storage_options_from_flags("s3://b/p", pairs=["my-secret-value"])
    assert "my-secret-value" not in str(caught.value)


def test_s3_options_are_bounded_and_overridable():
    pytest.importorskip("s3fs")
    store = ResultStore("s3://bucket/prefix", {"config_kwargs": {"read_timeout": 60}, "skip_instance_cache": True})
    assert store.fs.config_kwargs == {
        "connect_timeout": 5, "read_timeout": 60, "retries": {"mode": "standard", "total_max_attempts": 3}
    }
    assert store.fs.retries == 1
    assert store.is_object_store and store.location == "s3://bucket/prefix"


def test_error_descriptions_name_the_problem_and_hide_secrets(monkeypatch):
    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-1234")

    def client_error(code: str) -> PermissionError:
        error = PermissionError("denied")
        error.__cause__ = botocore_exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")
        return error

    assert "rejected the credentials (SignatureDoesNotMatch)" in describe_storage_error(
        client_error("SignatureDoesNotMatch"))
    assert "access denied (AccessDenied)" in describe_storage_error(client_error("AccessDenied"))
    assert "cannot reach the storage endpoint" in describe_storage_error(
        botocore_exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert "no usable credentials" in describe_storage_error(botocore_exceptions.NoCredentialsError())
    leaky = OSError("failed with option-secret-99 and env-secret-1234 at "
                    "https://user:pw@host/x?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA/1")
    store = ResultStore("memory://x", {"secret_token": "option-secret-99"})
    text = store._describe(leaky)
    for secret in ("option-secret-99", "env-secret-1234", "user:pw", "abcdef", "AKIA"):
        assert secret not in text
    assert text.startswith("failed with ***")


def test_markers_hold_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-session-token-77")
    store = ResultStore("memory://secrets", {"password": "option-password-42"})
    metadata = dict(METADATA, inputs=[{"source": "https://reader:option-password-42@mirror.example/pageviews"}],
                    note="env-session-token-77")
    store.publish(PERIOD, "csv", TABLE, metadata)
    text = store.fs.cat_file(f"{store.folder(PERIOD, 'csv')}/{MARKER}").decode()
    assert "option-password-42" not in text and "env-session-token-77" not in text and "reader" not in text
    assert store.read_marker(PERIOD, "csv")["inputs"] == [{"source": "https://***@mirror.example/pageviews"}]


def publish_two_hours(out) -> ResultStore:
    store = ResultStore(str(out))
    store.publish(PERIOD, "csv", TABLE, METADATA)
    store.publish(PERIOD, "jsonl", TABLE, METADATA)
    window = Period.window(HOUR, datetime(2020, 1, 22, 3, tzinfo=UTC))
    store.publish(window, "csv", TABLE.slice(1), dict(METADATA, period=window.metadata(),
                                                       hours={"included": 1, "missing": ["2020-01-22T03"]}))
    return store


def test_a_result_is_read_in_the_format_asked_or_the_first_published(tmp_path):
    store = publish_two_hours(tmp_path / "out")
    assert read_published(store, PERIOD).fmt == "csv"
    jsonl = read_published(store, PERIOD, "jsonl")
    assert jsonl.fmt == "jsonl" and jsonl.table.equals(TABLE) and jsonl.marker["format"] == "jsonl"
    with pytest.raises(NotPublishedResult, match=r"nothing published for day 2020-01-22 under .*\(looked for format "
                       r"csv, parquet, jsonl\)"):
        read_published(store, Period.of(HOUR, day=True))
    with pytest.raises(NotPublishedResult, match=r"\(looked for format parquet\)"):
        read_published(store, PERIOD, "parquet")


def test_rows_are_picked_by_domain_code_and_limited_per_domain_code():
    assert pick_rows(TABLE) == [["de", "Hauptseite", 50, 1], ["en", "Main_Page", 90, 1], ["en", "Cat", 7, 2]]
    assert pick_rows(TABLE, limit=1) == [["de", "Hauptseite", 50, 1], ["en", "Main_Page", 90, 1]]
    assert pick_rows(TABLE, ["en"]) == [["en", "Main_Page", 90, 1], ["en", "Cat", 7, 2]]
    assert pick_rows(TABLE, ("de", "xx"), limit=5) == [["de", "Hauptseite", 50, 1]]
    assert pick_rows(TABLE, ["xx"]) == []


def test_the_listing_orders_results_and_keeps_those_whose_period_cannot_be_read(tmp_path):
    store = publish_two_hours(tmp_path / "out")
    earlier = Period.hour(datetime(2020, 1, 22, 1, tzinfo=UTC))
    store.publish(earlier, "csv", TABLE, dict(METADATA, period="unreadable"))
    listed = list_published(store)
    assert [(e["kind"], e["period"], e["format"], e["hours"]) for e in listed] == [
        ("?", "csv/year=2020/month=01/day=22/hour=01", "csv", None),
        ("hour", "2020-01-22T02", "csv", None),
        ("hour", "2020-01-22T02", "jsonl", None),
        ("window", "2020-01-22T02..2020-01-22T03", "csv", "1/2"),
    ]
    assert [e["period"] for e in list_published(store, "jsonl")] == ["2020-01-22T02"]
    assert list_published(store, "parquet") == []
    assert listed[1]["location"] == store.display(store.folder(PERIOD, "csv")) and listed[1]["params"] == {"top": 25}


def test_show_prints_a_published_hour(cli, tmp_path):
    out = tmp_path / "out"
    publish_two_hours(out)
    result = cli("show", "2020-01-22T02", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "domain_code\tpage_title\tviews\trank", "de\tHauptseite\t50\t1", "en\tMain_Page\t90\t1", "en\tCat\t7\t2",
    ]
    assert "hour 2020-01-22T02 · csv" in result.stderr
    limited = cli("show", "2020-01-22T02", "--out", out, "--domain", "en", "--limit", "1", "--format", "jsonl")
    assert limited.stdout.splitlines()[1:] == ["en\tMain_Page\t90\t1"] and "· jsonl ·" in limited.stderr
    window = cli("show", "2020-01-22T02..2020-01-22T03", "--out", out)
    assert window.returncode == 0 and window.stdout.splitlines()[1:] == ["en\tMain_Page\t90\t1", "en\tCat\t7\t2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2020-01-22T05",), "nothing published for hour 2020-01-22T05 under "),
        (("2020-01-22T02", "--format", "parquet"), "(looked for format parquet)"),
        (("2020-01-22T02", "--day"), "nothing published for day 2020-01-22"),
        (("2020-01-22T02", "--domain", "xx"), "has no rows for domain_code xx"),
    ],
)
def test_show_says_when_nothing_is_there(cli, tmp_path, args, message):
    out = tmp_path / "out"
    publish_two_hours(out)
    result = cli("show", *args, "--out", out)
    assert result.returncode == 1 and message in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_ls_lists_published_results(cli, tmp_path):
    out = tmp_path / "out"
    publish_two_hours(out)
    (tmp_path / "out" / "format=csv" / "year=2020" / "stray").mkdir()
    (tmp_path / "out" / "format=csv" / "year=2020" / "stray" / "part-x.csv.gz").write_bytes(b"no marker")
    result = cli("ls", "--out", out)
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[:7] for line in result.stdout.splitlines()] == [
        ["kind", "period", "format", "top", "ties", "rows", "hours"],
        ["hour", "2020-01-22T02", "csv", "25", "", "3", ""],
        ["hour", "2020-01-22T02", "jsonl", "25", "", "3", ""],
        ["window", "2020-01-22T02..2020-01-22T03", "csv", "25", "", "3", "1/2"],
    ]
    listed = json.loads(cli("ls", "--out", out, "--json", "--format", "jsonl").stdout)
    assert [(e["kind"], e["format"], e["location"].endswith("hour=02")) for e in listed] == [("hour", "jsonl", True)]
    assert listed[0]["file"].startswith("part-") and listed[0]["params"] == {"top": 25}


def test_ls_says_when_nothing_is_there(cli, tmp_path):
    result = cli("ls", "--out", tmp_path / "nothing")
    assert result.returncode == 1 and "nothing published under " in result.stderr and result.stdout == ""
    publish_two_hours(tmp_path / "out")
    result = cli("ls", "--out", tmp_path / "out", "--format", "parquet")
    assert result.returncode == 1 and "in format parquet" in result.stderr
