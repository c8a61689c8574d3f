"""Parsing a dump's text into Arrow columns, on all cores, naming what it cannot parse.

The result is the ``raw_lines`` relation the shared SQL starts from: the first three
fields of each line that splits into exactly four, as text, and a row with a NULL
domain code for each empty line. Lines not valid UTF-8 or split into another number
of fields are counted by kind here; everything else is judged by ``clean_lines.sql``.
The reader also tells whether the pairs come in strictly increasing order, as in the
files Wikimedia publishes, which spares the engine from checking them for repeats.
"""

from __future__ import annotations

import queue
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as csv

from wikitop.source.gzipfile import MAX_LINE_BYTES, PIECE_SIZE, verified_pieces

FIELDS = ["domain_code", "page_title", "views_text", "response_size"]
RAW_LINES_SCHEMA = pa.schema([(name, pa.string()) for name in FIELDS[:3]])
BLOCK_SIZE = 16 << 20
# Parsing is the longest step of reading: two threads parse while one decompresses and the
# caller loads the previous piece.
PARSERS = 2
CHECK_CHUNK = 1 << 20
# Past this many breaks of order in a piece, its pairs are checked for repeats by hashing.
MAX_ORDER_BREAKS = 1000


@dataclass(frozen=True)
class PairOrder:
    """Whether the (domain_code, page_title) pairs of a piece's lines that may be good
    strictly increase in byte order, as in the sorted files Wikimedia publishes, which
    proves them distinct; and the first and last of those pairs, to compare pieces."""

    increasing: bool
    first: tuple[str, str] | None = None
    last: tuple[str, str] | None = None

    def followed_by(self, later: PairOrder) -> PairOrder:
        """The order of this piece and a later one, as one piece."""
        if self.last is None or later.first is None:
            joined = True
        else:
            joined = self.last < later.first  # str order is code point order, as UTF-8 byte order
        return PairOrder(self.increasing and later.increasing and joined, self.first or later.first,
                         later.last or self.last)


@contextmanager
def read_dump(
    path: Path, piece_size: int = PIECE_SIZE, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Iterator[tuple[pa.Table, Counter, PairOrder]]]:
    """parse_dump of each piece of a dump file, in order. Threads start reading on entry and
    work ahead of the caller (who may meanwhile get ready, e.g. connect an engine): one
    decompresses the pieces one after the other, PARSERS parse the next ones. Memory stays
    within a few pieces of piece_size plus max_line_bytes, whatever the lines' lengths."""
    spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    pieces = verified_pieces(path, piece_size, spare, max_line_bytes)

    def parse(decompressing: Future) -> tuple[pa.Table, Counter, PairOrder] | None:
        piece = decompressing.result()
        if piece is None:
            return None
        parsed = parse_dump(piece, max_line_bytes)
        spare.put(piece)
        return parsed

    with ThreadPoolExecutor(1, "decompress") as decompressor, ThreadPoolExecutor(PARSERS, "parse") as parser:

        def parse_next() -> Future:
            return parser.submit(parse, decompressor.submit(next, pieces, None))

        parsing = deque(parse_next() for _ in range(PARSERS))

        def parsed_pieces() -> Iterator[tuple[pa.Table, Counter, PairOrder]]:
            while True:
                parsed = parsing.popleft().result()
                if parsed is None:
                    return
                parsing.append(parse_next())
                yield parsed

        yield parsed_pieces()


def parse_dump(data: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[pa.Table, Counter, PairOrder]:
    """raw_lines(domain_code, page_title, views_text) of the lines, bad lines by kind, and
    the order of their pairs. Lines longer than max_line_bytes are bad (line_too_long)."""
    data, long_lines = _drop_long_lines(data, max_line_bytes)
    # Arrow's reader also ends lines at '\r'; the format ends them at '\n' only.
    data, lines_with_cr = _set_aside_lines_with(b"\r", data)
    data, invalid_lines = _drop_invalid_utf8(data)
    table, bad = _read_fields(data)
    # Arrow skips empty lines; they are what its rows and rejected lines leave unaccounted for.
    empty_lines = _count_lines(data) - table.num_rows - sum(bad.values())
    bad["invalid_utf8"] += invalid_lines
    bad["line_too_long"] += long_lines
    extra = _split_in_python(lines_with_cr, bad)
    order = _pair_order(table, in_file_order=not lines_with_cr)
    return pa.concat_tables([table, _empty_line_rows(empty_lines), extra]), +bad, order


def _read_fields(data: bytes) -> tuple[pa.Table, Counter]:
    """The first three fields of data's lines, which must be valid UTF-8 (not checked again)."""
    bad: Counter = Counter()

    def reject(row) -> str:
        bad[_split_problem(row.text)] += 1
        return "skip"

    if not data:
        return RAW_LINES_SCHEMA.empty_table(), bad
    # Without Arrow's own threads (the pieces are parsed on PARSERS threads anyway), the
    # reader lets go of data when it returns, so that the piece can be filled again.
    table = csv.read_csv(
        pa.BufferReader(data),
        read_options=csv.ReadOptions(column_names=FIELDS, block_size=BLOCK_SIZE, use_threads=False),
        parse_options=csv.ParseOptions(
            delimiter=" ", quote_char=False, escape_char=False, ignore_empty_lines=True, invalid_row_handler=reject
        ),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(FIELDS, pa.string()),
            strings_can_be_null=False,
            check_utf8=False,
            include_columns=RAW_LINES_SCHEMA.names,
        ),
    )
    return table, bad


def _split_problem(line: str) -> str:
    return "empty_domain_code" if line.startswith(" ") else "wrong_field_count"


def _pair_order(table: pa.Table, in_file_order: bool) -> PairOrder:
    """PairOrder of the rows, which are in file order unless lines were set aside.

    Rows that cannot be good (see _may_be_good) are left out where they break the order:
    bad lines sit anywhere in a file. Any title that clean_lines.sql may unquote leaves
    the order unproven, since its unquoted form might equal another title.
    """
    domain_codes, titles, counts = table.columns
    rows = table.num_rows
    if not in_file_order or pc.any(pc.match_substring(titles.filter(pc.starts_with(titles, '"')), '\\"')).as_py():
        return PairOrder(False)
    if not rows:
        return PairOrder(True)

    def pair(row: int) -> tuple[str, str]:
        return domain_codes[row].as_py(), titles[row].as_py()

    domain_before, domain_after = domain_codes.slice(0, rows - 1), domain_codes.slice(1)
    title_before, title_after = titles.slice(0, rows - 1), titles.slice(1)
    increasing = pc.or_(
        pc.less(domain_before, domain_after),
        pc.and_(pc.equal(domain_before, domain_after), pc.less(title_before, title_after)),
    )
    breaks = pc.indices_nonzero(pc.invert(increasing)).to_pylist()
    if len(breaks) > MAX_ORDER_BREAKS:
        return PairOrder(False)

    def may_be_good(row: int) -> bool:
        return _may_be_good(domain_codes[row].as_py(), counts[row].as_py())

    left_out = {row for row in {*breaks, *(b + 1 for b in breaks)} if not may_be_good(row)}
    if any(row not in left_out and row + 1 not in left_out for row in breaks):
        return PairOrder(False)
    # Around each run of rows left out, the rows kept on either side must be in order.
    for row in left_out:
        if row - 1 in left_out:
            continue
        after = row
        while after in left_out:
            after += 1
        if row > 0 and after < rows and not pair(row - 1) < pair(after):
            return PairOrder(False)
    # The ends that are compared with other pieces: bad lines can sit there too.
    ends = [
        next((pair(row) for row in rows_from if may_be_good(row)), None)
        for rows_from in (range(rows), range(rows - 1, -1, -1))
    ]
    return PairOrder(True, *ends)


def _may_be_good(domain_code: str, count: str) -> bool:
    """False for a line clean_lines.sql surely rejects: an empty domain code, or a count
    that is not 1 to 19 digits without a leading zero."""
    digits = count.isascii() and count.isdigit() and len(count) <= 19
    return bool(domain_code) and digits and (count == "0" or not count.startswith("0"))


def _count_lines(data: bytes) -> int:
    unterminated = bool(data) and not data.endswith(b"\n")
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == ord("\n"))) + unterminated


def _empty_line_rows(count: int) -> pa.Table:
    """raw_lines rows standing for empty lines: a NULL domain code."""
    return pa.table([pa.nulls(count, pa.string()), [""] * count, [""] * count], schema=RAW_LINES_SCHEMA)


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


def _drop_long_lines(data: bytes, max_line_bytes: int) -> tuple[bytes, int]:
    """The buffer without its lines longer than max_line_bytes, and how many there were.

    Such a line holds a whole aligned block of max_line_bytes // 2 bytes without a line
    break; in the buffer's other blocks the search for one stops within a line.
    """
    block = max(max_line_bytes // 2, 1)
    kept: list[bytes] = []
    dropped = 0
    position = 0
    for start in range(0, len(data) - block + 1, block):
        if start < position or data.find(b"\n", start, start + block) != -1:
            continue
        line_start = data.rfind(b"\n", 0, start) + 1
        line_end = data.find(b"\n", start + block)
        line_end = len(data) if line_end == -1 else line_end
        if line_end - line_start > max_line_bytes:
            kept.append(data[position:line_start])
            dropped += 1
            position = line_end + 1
    if not dropped:
        return data, 0
    kept.append(data[position:])
    return b"".join(kept), dropped


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

    Arrow validates the whole buffer, then, if it fails, chunks ending at a line break;
    only a chunk that fails is decoded by Python to find its bad lines.
    """
    if _is_utf8(data):
        return data, 0
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
    return b"".join(kept), dropped


def _is_utf8(chunk: bytes) -> bool:
    offsets = pa.array([0, len(chunk)], pa.int32()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(chunk)]).cast(pa.string())
        return True
    except pa.ArrowInvalid:
        return False
