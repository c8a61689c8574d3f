"""Writing results to a local folder or any fsspec URL, atomically, marker last.

A published result is a folder holding one data file and a ``_SUCCESS`` marker
(JSON metadata naming that file). Only the marker is trusted: the data file is
named after a digest of its bytes and written first, the marker written last
replaces the old one in a single step, and older data files are removed only
after that. So a run that dies leaves the earlier good result readable, and
nothing without a marker is ever taken as done.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wikitop.engines import RESULT_SCHEMA
from wikitop.hours import ONE_HOUR, format_hour, parse_hour

FORMATS = ("csv", "parquet", "jsonl")
MARKER = "_SUCCESS"
HOUR_RULE = (
    "hour = the UTC hour of views (HH:00:00-HH:59:59); its dump file is stamped one hour later"
)
_EXTENSIONS = {"csv": "csv.gz", "parquet": "parquet", "jsonl": "jsonl.gz"}


class PublishError(RuntimeError):
    """The result store cannot be read or written."""


@dataclass(frozen=True)
class Period:
    """What a result covers: an hour, a UTC day, or a window of hours (end included)."""

    kind: str
    start: datetime
    end: datetime

    @classmethod
    def hour(cls, hour: datetime) -> Period:
        return cls("hour", hour, hour)

    @classmethod
    def day(cls, first_hour: datetime) -> Period:
        return cls("day", first_hour, first_hour + 23 * ONE_HOUR)

    @classmethod
    def window(cls, start: datetime, end: datetime) -> Period:
        return cls("window", start, end)

    @property
    def hours(self) -> list[datetime]:
        count = int((self.end - self.start) / ONE_HOUR) + 1
        return [self.start + i * ONE_HOUR for i in range(count)]

    @property
    def partition(self) -> str:
        s = self.start
        if self.kind == "hour":
            return f"year={s:%Y}/month={s:%m}/day={s:%d}/hour={s:%H}"
        if self.kind == "day":
            return f"year={s:%Y}/month={s:%m}/day={s:%d}"
        return f"window={s:%Y%m%dT%H}-{self.end:%Y%m%dT%H}"

    @property
    def label(self) -> str:
        if self.kind == "hour":
            return format_hour(self.start)
        if self.kind == "day":
            return f"{self.start:%Y-%m-%d}"
        return f"{format_hour(self.start)}..{format_hour(self.end)}"

    def metadata(self) -> dict:
        return {"kind": self.kind, "start": format_hour(self.start), "end": format_hour(self.end)}

    @classmethod
    def from_metadata(cls, record: dict) -> Period:
        return cls(record["kind"], parse_hour(record["start"]), parse_hour(record["end"]))


def serialize(table: pa.Table, fmt: str) -> bytes:
    """The result's bytes; the same table always gives the same bytes."""
    table = table.select(RESULT_SCHEMA.names).cast(RESULT_SCHEMA)
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()
    text = io.StringIO()
    rows = zip(*(table.column(name).to_pylist() for name in RESULT_SCHEMA.names))
    if fmt == "csv":
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(RESULT_SCHEMA.names)
        writer.writerows(rows)
    elif fmt == "jsonl":
        for row in rows:
            text.write(json.dumps(dict(zip(RESULT_SCHEMA.names, row)), ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return gzip.compress(text.getvalue().encode("utf-8"), compresslevel=6, mtime=0)


def deserialize(data: bytes, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    text = gzip.decompress(data).decode("utf-8")
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        next(reader)
        records = [(d, t, int(v), int(r)) for d, t, v, r in reader]
    else:
        records = [tuple(json.loads(line).values()) for line in text.splitlines()]
    columns = list(zip(*records)) or [[] for _ in RESULT_SCHEMA.names]
    return pa.table(dict(zip(RESULT_SCHEMA.names, map(list, columns))), schema=RESULT_SCHEMA)


class ResultStore:
    """Results under one prefix: a local folder or an fsspec URL such as s3://bucket/path."""

    def __init__(self, out: str, storage_options: dict | None = None):
        self.out = out
        try:
            self.fs, self.root = fsspec.core.url_to_fs(out, **(storage_options or {}))
        except ImportError as error:
            raise PublishError(f"cannot write to {out}: {error}") from None
        self.is_local = "file" in _protocols(self.fs)
        self.root = self.root.rstrip("/")

    def folder(self, period: Period, fmt: str) -> str:
        return f"{self.root}/format={fmt}/{period.partition}"

    def display(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def read_marker(self, period: Period, fmt: str) -> dict | None:
        """The marker's metadata, or None when the result is not published."""
        path = f"{self.folder(period, fmt)}/{MARKER}"
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # an unreadable marker is no proof of a result
        except Exception as error:  # storage errors come in many types
            raise PublishError(f"cannot read {self.display(path)}: {_describe(error)}") from None

    def is_done(self, period: Period, fmt: str, params: dict) -> bool:
        marker = self.read_marker(period, fmt)
        return marker is not None and marker.get("params") == params

    def publish(self, period: Period, fmt: str, table: pa.Table, metadata: dict) -> str:
        """Write the data file, then the marker; returns the data file's path."""
        data = serialize(table, fmt)
        folder = self.folder(period, fmt)
        name = f"part-{hashlib.sha256(data).hexdigest()[:16]}.{_EXTENSIONS[fmt]}"
        marker = dict(metadata, file=name, file_bytes=len(data), format=fmt, published_at=_now())
        try:
            self.fs.makedirs(folder, exist_ok=True)
            self._write(f"{folder}/{name}", data)
            self._write(f"{folder}/{MARKER}", json.dumps(marker, indent=2, ensure_ascii=False).encode())
            self._remove_stale(folder, keep=name)
        except PublishError:
            raise
        except Exception as error:
            raise PublishError(f"cannot publish to {self.display(folder)}: {_describe(error)}") from None
        return f"{folder}/{name}"

    def _write(self, path: str, data: bytes) -> None:
        if not self.is_local:
            # An object store makes a PUT (or a completed multipart upload) visible whole.
            self.fs.pipe_file(path, data)
            return
        folder, _, name = path.rpartition("/")
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.fs.mv(temporary, path)

    def _remove_stale(self, folder: str, keep: str) -> None:
        for path in self.fs.ls(folder, detail=False):
            name = path.rstrip("/").rpartition("/")[2]
            if name != keep and (name.startswith("part-") or (name.startswith(".") and name.endswith(".tmp"))):
                self.fs.rm_file(path)

    def read_result(self, period: Period, fmt: str) -> tuple[dict, pa.Table] | None:
        marker = self.read_marker(period, fmt)
        if marker is None:
            return None
        path = f"{self.folder(period, fmt)}/{marker['file']}"
        try:
            return marker, deserialize(self.fs.cat_file(path), fmt)
        except Exception as error:
            raise PublishError(f"cannot read {self.display(path)}: {_describe(error)}") from None

    def markers(self) -> Iterator[tuple[str, dict]]:
        """Every published result under the prefix, as (folder, marker metadata)."""
        try:
            paths = sorted(self.fs.glob(f"{self.root}/format=*/**/{MARKER}"))
        except FileNotFoundError:
            return
        except Exception as error:
            raise PublishError(f"cannot list {self.out}: {_describe(error)}") from None
        for path in paths:
            try:
                yield path.rpartition("/")[0], json.loads(self.fs.cat_file(path))
            except (FileNotFoundError, ValueError):
                continue


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SECRET_PATTERN = re.compile(r"(?i)(secret|signature|credential|token)[^\s,;]*")


def _describe(error: Exception) -> str:
    """A one-line error message with anything that looks like a credential cut out."""
    message = " ".join(str(error).split()) or type(error).__name__
    return _SECRET_PATTERN.sub(r"\1=<hidden>", message)[:300]
