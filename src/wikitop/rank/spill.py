"""Where DuckDB spills beyond its memory limit: a folder per engine in the system's temporary
folder, named after its process, which the engine removes when it closes. A run killed
outright (kill -9) leaves its folder behind: those of processes no longer alive are removed
when an engine starts and by ``cache prune``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_SPILL_FOLDER_NAME = re.compile(r"wikitop-duckdb-(?P<pid>\d+)-[0-9a-f]+")


def spill_folder(engine: object) -> Path:
    return Path(tempfile.gettempdir()) / f"wikitop-duckdb-{os.getpid()}-{id(engine):x}"


def dead_spill_folders() -> list[Path]:
    """The spill folders of processes that are no longer alive."""
    found = []
    for folder in sorted(Path(tempfile.gettempdir()).glob("wikitop-duckdb-*")):
        match = _SPILL_FOLDER_NAME.fullmatch(folder.name)
        if match and folder.is_dir() and not process_is_alive(int(match["pid"])):
            found.append(folder)
    return found


def remove_dead_spill_folders() -> list[Path]:
    """Remove the spill folders of dead processes; returns those removed."""
    removed = []
    for folder in dead_spill_folders():
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():  # another account's stays
            removed.append(folder)
    return removed


def process_is_alive(pid: int) -> bool:
    if os.name == "nt":  # there os.kill would end the process: never tell one dead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's
        return True
    return True
