"""Local files written whole or not at all: into a temporary file beside the target, synced to
disk, then renamed over it, so that a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

_TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.\w+\.tmp")


def temporary_path(path: Path) -> Path:
    """A temporary name beside ``path`` (``.NAME.RANDOM.tmp``), hidden and unique to one writer."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def target_of_temporary(name: str) -> str | None:
    """The name of the file a temporary file (``temporary_path``) becomes, or None for another name."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return match["target"] if match else None


def write_atomically(path: Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``path`` whole: ``content`` as bytes or UTF-8 text, or by a function that writes
    the temporary file whose path it is given (e.g. a database's COPY ... TO). On failure
    the temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        if callable(content):
            content(temporary)
        else:
            temporary.write_bytes(content.encode() if isinstance(content, str) else content)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
    return path
