"""Verified decompression of dump files.

Wikimedia publishes no checksums for pageviews: a file is whole when every gzip
member's CRC32 and length trailer check out, which only a full decompression
shows. Engines that parse the text get it from here in the same pass.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from isal import igzip


class CorruptDump(RuntimeError):
    """The bytes are not a complete gzip file."""


def read_verified(path: Path) -> bytes:
    """The decompressed contents of a gzip file, every trailer checked (plain files as they are)."""
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    if path.stat().st_size == 0:
        raise CorruptDump(f"{path.name} is empty")
    try:
        with igzip.open(path, "rb") as compressed:
            return compressed.read()
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptDump(f"{path.name} is corrupt or truncated ({error})") from None
