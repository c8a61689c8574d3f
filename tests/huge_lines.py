"""Dumps that compress extremely well: one line of many megabytes between two short ones."""

from __future__ import annotations

import zlib
from pathlib import Path


def write_huge_line_gzip(path: Path, megabytes: int, before: bytes = b"") -> Path:
    """A gzip of ``before``, then ``en xxx...x 2 0`` with a title of ``megabytes`` MiB, then
    ``en After 3 0``, compressed at level 9 (a few KB per 1 MiB of title)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with Path(path).open("wb") as file:
        file.write(compressor.compress(before + b"en "))
        for _ in range(megabytes):
            file.write(compressor.compress(b"x" * (1 << 20)))
        file.write(compressor.compress(b" 2 0\nen After 3 0\n") + compressor.flush())
    return Path(path)
