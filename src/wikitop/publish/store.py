"""Results in a local folder or any fsspec URL, written atomically, marker last.

A published result is a folder holding one data file and a ``_SUCCESS`` marker (JSON
metadata naming that file), written as ``wikitop.storage`` writes its folders: only the
marker is trusted, so a run that dies leaves the earlier good result readable, and
nothing without a marker is ever taken as done; nor is a marker whose data file is gone.

Arrow is imported by the functions that encode and decode results, when they run.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from isal import igzip

from wikitop.model import Period
from wikitop.storage import MARKER, FolderStore, StorageError, marker_record, now_text

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("csv", "parquet", "jsonl")
# Each grain is a hive-partitioned dataset of its own: hours keep the original project's
# OUT/format=FMT/year=/month=/day=/hour=, days and windows sit in folders beside it so that
# no reader pointed at a grain's root meets partitions of another's.
GRAIN_ROOTS = {"hour": "", "day": "daily/", "window": "windows/"}
SHARE_DECIMALS = 4
_EXTENSIONS = {"csv": "csv.gz", "parquet": "parquet", "jsonl": "jsonl.gz"}


class PublishError(StorageError):
    """The result store cannot be read or written."""


def serialize(table: pa.Table, fmt: str) -> bytes:
    """The result's bytes; the same table always gives the same bytes."""
    from wikitop.model import result_schema

    schema = result_schema(table.column_names)
    table = table.select(schema.names).cast(schema)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # 0.03 s to import, which the other formats need not pay

        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()
    if fmt == "csv":
        text = _csv_bytes(table)
    elif fmt == "jsonl":
        rows = zip(*(table.column(name).to_pylist() for name in schema.names))
        text = "".join(
            json.dumps(dict(zip(schema.names, row)), ensure_ascii=False) + "\n" for row in rows
        ).encode("utf-8")
    else:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    # ISA-L's level 3 compresses an hour's top list (1.6 MB of text) in a tenth of zlib's
    # level 6 time (0.01 s against 0.09 s) for 7% more bytes; any gzip reader reads it.
    return igzip.compress(text, compresslevel=3, mtime=0)


def _csv_bytes(table: pa.Table) -> bytes:
    """The CSV text with minimal quoting, as Python's csv writes it, built column-wise (a
    tenth of the time of writing row by row), except that a field holding a lone '\r' is
    quoted too: readers end lines there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = [_csv_field(table.column(name)) for name in table.column_names]
    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*fields, ","), "\n", "").combine_chunks()
    header = (",".join(table.column_names) + "\n").encode()
    if not len(lines):
        return header
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return header + lines.buffers()[2].slice(offsets[0], offsets[-1] - offsets[0]).to_pybytes()


def rounded_share(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Mobile shares as CSV and ``show`` print them: to 4 decimals (Parquet and JSONL keep
    them whole)."""
    import pyarrow.compute as pc

    return pc.round(values, SHARE_DECIMALS)


def _csv_field(values: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(values.type):  # a NULL share: an empty field
        return pc.fill_null(pc.cast(rounded_share(values), pa.string()), "")
    if not pa.types.is_string(values.type):
        return pc.cast(values, pa.string())
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(values, '[,"\r\n]'), quoted, values)


def deserialize(data: bytes, fmt: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wikitop.model import result_schema

    if fmt == "parquet":
        # Not read_table: its dataset scan may drop the last reference to ``data`` on one
        # of Arrow's threads while the interpreter exits, which aborts the process.
        return pq.ParquetFile(pa.BufferReader(data)).read()
    text = igzip.decompress(data).decode("utf-8")
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        schema = result_schema(next(reader))
        parse = [str if pa.types.is_string(f.type) else int if pa.types.is_integer(f.type) else float for f in schema]
        records = [tuple(p(v) if v != "" or p is str else None for p, v in zip(parse, row)) for row in reader]
    else:
        rows = [json.loads(line) for line in text.split("\n") if line]
        schema = result_schema(rows[0] if rows else ())
        records = [tuple(row.values()) for row in rows]
    columns = list(zip(*records)) or [[] for _ in schema.names]
    return pa.table(dict(zip(schema.names, map(list, columns))), schema=schema)


class ResultStore(FolderStore):
    """Results under one prefix: a local folder or an fsspec URL such as s3://bucket/path."""

    error = PublishError
    writing = "publish to"

    def folder(self, period: Period, fmt: str) -> str:
        return f"{self.root}/{GRAIN_ROOTS[period.kind]}format={fmt}/{period.partition}"

    def read_marker(self, period: Period, fmt: str) -> dict | None:
        """The marker's metadata, or None when the result is not published; one GET on S3."""
        return self.read_marker_in(self.folder(period, fmt))

    def publish(self, period: Period, fmt: str, table: pa.Table, metadata: dict) -> str:
        """Write the data file, then the marker, then remove leftovers; returns the data file's path."""
        data = serialize(table, fmt)
        marker = dict(metadata, format=fmt, published_at=now_text())
        return self.write_folder(self.folder(period, fmt), data, _EXTENSIONS[fmt], marker)

    def data_exists(self, period: Period, fmt: str, marker: dict) -> bool:
        """The data file the marker names exists (one HEAD on S3)."""
        return self.file_in(self.folder(period, fmt), marker)

    def read_result(self, period: Period, fmt: str) -> tuple[dict, pa.Table] | None:
        """The marker and the table it names, or None when the result is not published."""
        marker = self.read_marker(period, fmt)
        if marker is None:
            return None
        path = f"{self.folder(period, fmt)}/{marker['file']}"
        try:
            return marker, deserialize(self.fs.cat_file(path), fmt)
        except Exception as error:
            raise PublishError(f"cannot read {self.display(path)}: {self._describe(error)}") from None

    def markers(self) -> list[tuple[str, dict]]:
        """Every published result under the prefix, as (folder, marker metadata), sorted by
        folder; a marker whose data file is gone is no result. One listing of the prefix."""
        try:
            self.fs.invalidate_cache(self.root)
            files = set(self.fs.find(self.root))
            grain_roots = tuple(f"/{grain_root}format=" for grain_root in GRAIN_ROOTS.values())
            paths = sorted(path for path in files
                           if path.endswith(f"/{MARKER}") and path[len(self.root):].startswith(grain_roots))
            contents = self.fs.cat(paths, on_error="return", **self._one_request) if paths else {}
        except Exception as error:
            raise PublishError(f"cannot list {self.location}: {self._describe(error)}") from None
        found = []
        for path in paths:
            content = contents.get(path)
            if isinstance(content, FileNotFoundError):
                continue  # removed since the listing
            if isinstance(content, Exception):
                raise PublishError(f"cannot read {self.display(path)}: {self._describe(content)}")
            folder = path.rpartition("/")[0]
            record = marker_record(content)
            if record is not None and f"{folder}/{record['file']}" in files:
                found.append((folder, record))
        return found

