"""Verified decompression of dump files.

Wikimedia publishes no checksums for pageviews: a file is whole when every gzip
member's CRC32 and length trailer check out, which only a full decompression
shows. Engines that read plain text get it from here in the same pass.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from isal import igzip

CHUNK_SIZE = 1 << 20


class CorruptDump(RuntimeError):
    """The bytes are not a complete gzip file."""


def decompress_verified(source: Path, target: Path) -> int:
    """Decompress ``source`` to ``target`` checking every trailer; returns the number of lines.

    ``target`` is removed again when the file turns out to be corrupt or truncated.
    """
    newlines = 0
    last = b"\n"
    try:
        with igzip.open(source, "rb") as compressed, open(target, "wb") as plain:
            while chunk := compressed.read(CHUNK_SIZE):
                plain.write(chunk)
                newlines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError, zlib.error) as error:
        target.unlink(missing_ok=True)
        raise CorruptDump(f"{Path(source).name} is corrupt or truncated ({error})") from None
    if os.path.getsize(source) == 0:
        target.unlink(missing_ok=True)
        raise CorruptDump(f"{Path(source).name} is empty")
    return newlines + (last != b"\n")
