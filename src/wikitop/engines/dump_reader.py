"""Parsing a dump's text into Arrow columns, on all cores, naming what it cannot parse.

The result is the ``raw_lines`` relation the shared SQL starts from: the first three
fields of each line that splits into exactly four, as text, and a row with a NULL
domain code for each empty line. Lines not valid UTF-8 or split into another number
of fields are counted by kind here; everything else is judged by ``clean_lines.sql``.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv

from wikitop.gzipfile import verified_pieces

FIELDS = ["domain_code", "page_title", "views_text", "response_size"]
FIELDS_SCHEMA = pa.schema([(name, pa.string()) for name in FIELDS])
RAW_LINES_SCHEMA = pa.schema(list(FIELDS_SCHEMA)[:3])
BLOCK_SIZE = 16 << 20
CHECK_CHUNK = 1 << 20


def read_dump(path: Path) -> tuple[pa.Table, Counter]:
    """parse_dump over a dump file, decompressing each piece while the one before is parsed."""
    tables, bad = [], Counter()
    pieces = verified_pieces(path)
    with ThreadPoolExecutor(1, thread_name_prefix="decompress") as decompressor:
        upcoming = decompressor.submit(next, pieces, None)
        while (piece := upcoming.result()) is not None:
            upcoming = decompressor.submit(next, pieces, None)
            table, piece_bad = parse_dump(piece)
            tables.append(table)
            bad += piece_bad
    return (pa.concat_tables(tables) if tables else RAW_LINES_SCHEMA.empty_table()), bad


def parse_dump(data: bytes) -> tuple[pa.Table, Counter]:
    """raw_lines(domain_code, page_title, views_text) of the lines, and bad lines by kind."""
    # Arrow's reader also ends lines at '\r'; the format ends them at '\n' only.
    data, lines_with_cr = _set_aside_lines_with(b"\r", data)
    try:
        # Most hours are valid UTF-8 throughout, which Arrow checks as it parses, in parallel.
        table, bad = _read_fields(data, check_utf8=True)
    except pa.ArrowInvalid:
        data, invalid_lines = _drop_invalid_utf8(data)
        table, bad = _read_fields(data, check_utf8=False)
        bad["invalid_utf8"] += invalid_lines
    table = _mark_empty_lines(table, data)
    extra = _split_in_python(lines_with_cr, bad)
    return pa.concat_tables([table.select(RAW_LINES_SCHEMA.names), extra]), +bad


def _read_fields(data: bytes, check_utf8: bool) -> tuple[pa.Table, Counter]:
    bad: Counter = Counter()

    def reject(row) -> str:
        bad[_split_problem(row.text)] += 1
        return "skip"

    if not data:
        return FIELDS_SCHEMA.empty_table(), bad
    with _quiet_undecodable_rows(reject):
        table = csv.read_csv(
            pa.BufferReader(data),
            read_options=csv.ReadOptions(column_names=FIELDS, block_size=BLOCK_SIZE),
            parse_options=csv.ParseOptions(
                delimiter=" ", quote_char=False, escape_char=False, ignore_empty_lines=False, invalid_row_handler=reject
            ),
            convert_options=csv.ConvertOptions(
                column_types=dict.fromkeys(FIELDS, pa.string()), strings_can_be_null=False, check_utf8=check_utf8
            ),
        )
    return table, bad


@contextmanager
def _quiet_undecodable_rows(reject):
    """Arrow decodes a rejected row before calling its handler; when that row is not UTF-8,
    it reports the error as unraisable and fails the read, which the caller then redoes
    on the slow path. Only that report is silenced."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, UnicodeDecodeError) and unraisable.object is reject):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _split_problem(line: str) -> str:
    return "empty_domain_code" if line.startswith(" ") else "wrong_field_count"


def _mark_empty_lines(table: pa.Table, data: bytes) -> pa.Table:
    """Arrow reads an empty line and a line of three spaces alike, as four empty fields:
    the first is an empty line (NULL domain code in raw_lines), the second a line with
    an empty domain code. Which row is which does not matter, only how many of each."""
    without_domain = pc.indices_nonzero(pc.equal(pc.binary_length(table["domain_code"]), 0))
    if not len(without_domain):
        return table
    fields = table.select(FIELDS[1:]).take(without_domain).to_pylist()
    all_empty = [row for row, line in zip(without_domain.to_pylist(), fields) if not any(line.values())]
    empty_lines = _count_empty_lines(data, at_most=len(all_empty))
    if not empty_lines:
        return table
    is_empty_line = np.zeros(table.num_rows, dtype=bool)
    is_empty_line[all_empty[:empty_lines]] = True
    # Only the short domain column is rebuilt; filtering rows would copy every title.
    domain_codes = pc.if_else(pa.array(is_empty_line), pa.scalar(None, pa.string()), table["domain_code"])
    return table.set_column(0, "domain_code", domain_codes)


def _count_empty_lines(data: bytes, at_most: int) -> int:
    count = int(data.startswith(b"\n"))
    found = data.find(b"\n\n")
    while found != -1 and count < at_most:
        count += 1
        found = data.find(b"\n\n", found + 1)
    return count


def _set_aside_lines_with(mark: bytes, data: bytes) -> tuple[bytes, list[bytes]]:
    """The buffer without its lines holding mark, and those lines."""
    kept, lines, position = [], [], 0
    found = data.find(mark)
    while found != -1:
        start = data.rfind(b"\n", 0, found) + 1
        end = data.find(b"\n", found)
        end = len(data) if end == -1 else end + 1
        kept.append(data[position:start])
        lines.append(data[start:end].removesuffix(b"\n"))
        position = end
        found = data.find(mark, end)
    if not lines:
        return data, []
    kept.append(data[position:])
    return b"".join(kept), lines


def _split_in_python(lines: list[bytes], bad: Counter) -> pa.Table:
    """raw_lines of lines Arrow is not given, counting the bad ones."""
    rows = []
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            bad["invalid_utf8"] += 1
            continue
        fields = text.split(" ")
        if len(fields) == 4 and fields[0]:
            rows.append(fields[:3])
        else:
            bad[_split_problem(text)] += 1
    columns = list(zip(*rows)) or [[], [], []]
    return pa.table(columns, schema=RAW_LINES_SCHEMA)


def _drop_invalid_utf8(data: bytes) -> tuple[bytes, int]:
    """The buffer without its lines that are not valid UTF-8, and how many there were.

    Arrow validates chunks ending at a line break; only a chunk that fails is decoded
    by Python to find its bad lines.
    """
    kept: list[bytes] = []
    dropped = 0
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + CHECK_CHUNK)
        end = len(data) if end == -1 else end + 1
        chunk = data[start:end]
        if _is_utf8(chunk):
            kept.append(chunk)
            start = end
            continue
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = start + error.start
            line_start = data.rfind(b"\n", start, bad) + 1 or start
            line_end = data.find(b"\n", bad)
            kept.append(data[start:line_start])
            dropped += 1
            start = len(data) if line_end == -1 else line_end + 1
    return (data if not dropped else b"".join(kept)), dropped


def _is_utf8(chunk: bytes) -> bool:
    offsets = pa.array([0, len(chunk)], pa.int32()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(chunk)]).cast(pa.string())
        return True
    except pa.ArrowInvalid:
        return False
