"""The DuckDB engine's dump reader: the same lines and counts however a dump is cut into pieces."""

from __future__ import annotations

import gzip
import json
import queue
import subprocess
import sys
import textwrap
from collections import Counter

import pyarrow as pa
import pytest

from conftest import EDGE_CASE_LINES, REAL_PREFIX
from huge_lines import write_huge_line_gzip
from wikitop.source.dump_reader import PairOrder, read_dump
from wikitop.source.gzipfile import CorruptDump, verified_pieces
from wikitop.synthetic import generate_hour

# More than any file here holds: the whole file in one piece.
WHOLE = 1 << 24


def read_all(path, piece_size: int, **limits) -> tuple[list[tuple], Counter, bool]:
    """The rows in any order, the bad lines and whether the pairs are shown to increase."""
    tables, bad, order = [], Counter(), PairOrder(True)
    with read_dump(path, piece_size, **limits) as pieces:
        for table, piece_bad, piece_order in pieces:
            tables.append(table)
            bad += piece_bad
            order = order.followed_by(piece_order)
    rows = pa.concat_tables(tables).to_pylist()
    return sorted((tuple(row.values()) for row in rows), key=repr), bad, order.increasing


def gzipped(tmp_path, lines: bytes):
    path = tmp_path / "hour.gz"
    path.write_bytes(gzip.compress(lines, mtime=0))
    return path


def test_edge_cases_are_told_apart(tmp_path):
    path = tmp_path / "edge.gz"
    path.write_bytes(gzip.compress(EDGE_CASE_LINES, mtime=0))
    rows, bad, _ = read_all(path, 1 << 20)
    # Lines end at '\n' only: '\r\n' ends a line holding one field, '\r'.
    assert bad == {"invalid_utf8": 4, "wrong_field_count": 3, "empty_domain_code": 2}
    assert rows.count((None, "", "")) == 1  # the empty line
    assert ("", "", "") in rows  # three spaces: four empty fields, not an empty line
    assert ("en", "ok", "7") in rows and ("en", "no_final_newline", "2") in rows
    assert not any(row[1] in ("bad_size_field", "truncated_\ufffd") for row in rows)


@pytest.mark.parametrize("piece_size", [1, 7, 1000])
def test_pieces_of_any_size_give_the_same_lines(tmp_path, piece_size):
    edge = tmp_path / "edge.gz"
    edge.write_bytes(gzip.compress(EDGE_CASE_LINES, mtime=0))
    generated = tmp_path / "generated.gz"
    generate_hour(generated, lines=1_000, seed=3)
    for path in (edge, generated):
        assert read_all(path, piece_size) == read_all(path, WHOLE)


def test_spare_pieces_are_filled_again_unless_still_held(tmp_path):
    lines = b"".join(b"en Page_%d %d 0\n" % (n, n) for n in range(100))
    spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    pieces = verified_pieces(gzipped(tmp_path, lines), 64, spare)
    first = next(pieces)
    received = [bytes(first)]
    spare.put(first)
    second = next(pieces)
    assert second is first
    received.append(bytes(second))
    held = memoryview(second)  # still read elsewhere, e.g. by Arrow
    spare.put(second)
    third = next(pieces)
    assert third is not second and bytes(held) == received[-1]
    received += [bytes(third), *(bytes(piece) for piece in pieces)]
    assert b"".join(received) == lines
    assert all(piece.endswith(b"\n") and len(piece) <= 64 + 20 for piece in received)


def test_a_truncated_dump_fails_the_iteration(tmp_path):
    path = tmp_path / "truncated.gz"
    generate_hour(path, lines=20_000, seed=5)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDump, match="truncated.gz"):
        read_all(path, 1 << 16)


def test_sorted_files_are_known_to_hold_each_pair_once(tmp_path):
    real = gzipped(tmp_path, REAL_PREFIX.read_bytes())
    generated = tmp_path / "generated.gz"  # bad lines of every kind, at random places
    generate_hour(generated, lines=20_000, seed=8)
    for path in (real, generated):
        for piece_size in (1 << 12, WHOLE):
            assert read_all(path, piece_size)[2], (path.name, piece_size)


@pytest.mark.parametrize(
    "lines",
    [
        b"en a 1 0\nen b 1 0\nen a 2 0\n",  # a pair twice
        b"en a 1 0\nen zz 1.5 0\nen a 2 0\n",  # a pair twice, a bad line between
        b"en a 1 0\n\nen a 2 0\n",  # a pair twice, an empty line between
        b"en b 1 0\nen a 1 0\n",  # out of order
        b"en a 1 0\nde b 1 0\n",  # domains out of order
        b'en A 1 0\nen "\\"A\\"" 1 0\nen "A" 1 0\n',  # a title that may unquote
        b"en a\r 1 0\nen b 1 0\n",  # a line set aside
    ],
)
def test_pairs_not_shown_to_increase(tmp_path, lines):
    assert not read_all(gzipped(tmp_path, lines), 1 << 20)[2]
    assert not read_all(gzipped(tmp_path, lines), 4)[2]


LONG_LINES = (
    b"en A 1 0\n" + b"en " + b"b" * 93 + b" 2 0\n"  # 100 bytes: kept
    + b"en " + b"c" * 94 + b" 3 0\n"  # 101 bytes
    + b"en D 4 0\n" + b"e" * 5000 + b"\n" + b"en F 5 0\n"
    + b"en " + b"g" * 300 + b" 6 0"  # the last line, without a line break
)


@pytest.mark.parametrize("piece_size", [1, 7, 64, 150, 1000, WHOLE])
def test_lines_past_the_longest_kept_are_bad_however_the_dump_is_cut(tmp_path, piece_size):
    rows, bad, _ = read_all(gzipped(tmp_path, LONG_LINES), piece_size, max_line_bytes=100)
    assert bad == {"line_too_long": 3}
    assert rows == sorted([("en", "A", "1"), ("en", "b" * 93, "2"), ("en", "D", "4"), ("en", "F", "5")], key=repr)


def test_a_huge_line_costs_no_more_memory_than_a_piece(tmp_path):
    """A 128 MB line in a gzip of 128 KB: read in 1 MB pieces, memory grows by a few of them."""
    path = tmp_path / "huge_line.gz"
    write_huge_line_gzip(path, megabytes=128, before=b"en Before 1 0\n")
    script = textwrap.dedent("""
        import json, sys
        from collections import Counter
        from wikitop.source.dump_reader import read_dump

        def memory_mb(field):  # this process's alone: getrusage's peak includes its parent's at exec
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field))

        before, rows, bad = memory_mb("VmRSS:"), [], Counter()
        with read_dump(sys.argv[1], 1 << 20) as pieces:
            for table, piece_bad, _ in pieces:
                rows += table.column("page_title").to_pylist()
                bad += piece_bad
        print(json.dumps({"growth_mb": memory_mb("VmHWM:") - before, "titles": rows, "bad": bad}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["titles"] == ["Before", "After"] and report["bad"] == {"line_too_long": 1}
    assert report["growth_mb"] < 32, report["growth_mb"]
