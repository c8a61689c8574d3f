"""Parsing a dump's text into Arrow columns, on all cores, naming what it cannot parse.

The result is the ``raw_fields`` relation the shared SQL starts from: the three
fields of each line that split into exactly four, as text. Lines that are not
valid UTF-8 or split into another number of fields are counted by kind here;
everything else is judged by ``clean_lines.sql``.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.csv as csv

FIELDS = ["domain_code", "page_title", "views_text", "response_size"]
BLOCK_SIZE = 16 << 20
CHECK_CHUNK = 1 << 20


def parse_dump(data: bytes) -> tuple[pa.Table, Counter]:
    """raw_fields(domain_code, page_title, views_text) of the lines, and bad lines by kind."""
    bad: Counter = Counter()
    data, bad["invalid_utf8"] = _drop_invalid_utf8(data)

    def reject(row) -> str:
        bad["empty_domain_code" if row.text.startswith(" ") else "wrong_field_count"] += 1
        return "skip"

    table = csv.read_csv(
        pa.BufferReader(data),
        read_options=csv.ReadOptions(column_names=FIELDS, block_size=BLOCK_SIZE),
        parse_options=csv.ParseOptions(
            delimiter=" ", quote_char=False, escape_char=False, ignore_empty_lines=False, invalid_row_handler=reject
        ),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(FIELDS, pa.string()),
            include_columns=FIELDS[:3],
            strings_can_be_null=False,
            check_utf8=False,
        ),
    )
    return table, +bad


def _drop_invalid_utf8(data: bytes) -> tuple[bytes, int]:
    """The buffer without its lines that are not valid UTF-8, and how many there were.

    Arrow validates chunks ending at a line break at SIMD speed; only a chunk that
    fails is decoded by Python to find its bad lines.
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
