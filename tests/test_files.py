"""Local files written whole or not at all (wikitop.files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wikitop.files import target_of_temporary, temporary_path, write_atomically


def test_bytes_text_and_a_writer_replace_the_file_whole(tmp_path):
    target = tmp_path / "record.json"
    assert write_atomically(target, b"one") == target and target.read_bytes() == b"one"
    write_atomically(target, "twö")
    assert target.read_text(encoding="utf-8") == "twö"
    write_atomically(target, lambda temporary: temporary.write_bytes(b"three"))
    assert target.read_bytes() == b"three"
    assert [path.name for path in tmp_path.iterdir()] == ["record.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "totals.parquet"
    target.write_bytes(b"old")

    def half_written(temporary: Path) -> None:
        temporary.write_bytes(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_written)

    def folder_written(temporary: Path) -> None:  # as Spark writes
        (temporary / "part-0.parquet").parent.mkdir()
        (temporary / "part-0.parquet").write_bytes(b"x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomically(target, folder_written)
    assert [path.name for path in tmp_path.iterdir()] == ["totals.parquet"] and target.read_bytes() == b"old"
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "missing" / "r.html", "<p>")


def test_a_temporary_name_tells_the_file_it_becomes(tmp_path):
    temporary = temporary_path(tmp_path / "totals-20200122-02.parquet")
    assert temporary.parent == tmp_path and temporary.name.startswith(".") and temporary.name.endswith(".tmp")
    assert temporary_path(tmp_path / "x") != temporary_path(tmp_path / "x")
    assert target_of_temporary(temporary.name) == "totals-20200122-02.parquet"
    assert target_of_temporary(".totals-20200122-03.parquet.1234.tmp") == "totals-20200122-03.parquet"
    assert target_of_temporary("totals-20200122-02.parquet") is None
    assert target_of_temporary("part-0123.csv.gz") is None
