"""The DuckDB engine's dump reader: the same lines and counts however a dump is cut into pieces."""

from __future__ import annotations

import gzip
from collections import Counter

import pyarrow as pa
import pytest

from conftest import EDGE_CASE_LINES
from wikitop.engines.dump_reader import read_dump
from wikitop.gzipfile import CorruptDump
from wikitop.synthetic import generate_hour


def read_all(path, piece_size: int) -> tuple[list[tuple], Counter]:
    tables, bad = [], Counter()
    for table, piece_bad in read_dump(path, piece_size):
        tables.append(table)
        bad += piece_bad
    rows = pa.concat_tables(tables).to_pylist()
    return sorted((tuple(row.values()) for row in rows), key=repr), bad


def test_edge_cases_are_told_apart(tmp_path):
    path = tmp_path / "edge.gz"
    path.write_bytes(gzip.compress(EDGE_CASE_LINES, mtime=0))
    rows, bad = read_all(path, 1 << 20)
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
    generate_hour(generated, lines=5_000, seed=3)
    for path in (edge, generated):
        assert read_all(path, piece_size) == read_all(path, 1 << 30)


def test_a_truncated_dump_fails_the_iteration(tmp_path):
    path = tmp_path / "truncated.gz"
    generate_hour(path, lines=20_000, seed=5)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDump, match="truncated.gz"):
        read_all(path, 1 << 16)
