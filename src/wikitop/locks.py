"""Locks between processes on the files of the cache and of a local result store.

A guarded file has an empty lock file beside it, ``NAME.lock``, locked with the
operating system's file lock (flock on Unix, through filelock's ``lock_descriptor``):
the kernel releases it when its process dies, so a lock is never stale. A locker, once
it has the lock, checks that the lock file's name still names the file it opened and
locked, and starts again otherwise: ``cache prune`` deletes the lock file of what it
deletes while holding it (``PathLock.delete``), and a process that opened the old file
before and one that creates a new file after must not both hold "the" lock.

``hold`` and ``release`` share one lock per file between the threads of a process
(counted, so each hold needs its release): threads coordinate among themselves with
their own locks, and these keep other processes out. ``exclusive`` and
``try_exclusive`` take a lock of their own, which keeps out the other threads too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import lock_descriptor, unlock_descriptor

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


class PathLock:
    """The lock of one guarded path, held through a descriptor of its lock file."""

    def __init__(self, path: Path):
        self.path = path
        self.lock_file = lock_path(path)
        self._descriptor: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Lock the file that the lock file's name stands for once locked (its holder may have
        deleted the one opened); False, unless blocking, when another process or lock has it."""
        while True:
            try:
                descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # its folder is new, or was just pruned
                self.lock_file.parent.mkdir(parents=True, exist_ok=True)
                continue
            try:
                locked = lock_descriptor(descriptor, blocking=blocking)
                if locked and self._names(descriptor):
                    self._descriptor = descriptor
                    return True
            except BaseException:
                os.close(descriptor)
                raise
            os.close(descriptor)
            if not locked:
                return False
            # The file was deleted (with what it guarded) after we opened it: lock the one there now.

    def _names(self, descriptor: int) -> bool:
        try:
            return os.path.samestat(os.fstat(descriptor), os.stat(self.lock_file))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        try:
            unlock_descriptor(descriptor)
        finally:
            os.close(descriptor)

    def delete(self) -> None:
        """Delete the lock file while holding it: whoever locks the old file next finds its
        name gone, or naming another file, and starts again."""
        with contextlib.suppress(OSError):  # e.g. on Windows, where a file open elsewhere stays
            self.lock_file.unlink()


class _SharedLock:
    """A process's lock of a path, counted over its holds."""

    def __init__(self, path: Path):
        self.lock = PathLock(path)
        self.holds = 0
        self.guard = threading.Lock()


_shared: dict[Path, _SharedLock] = {}
_shared_guard = threading.Lock()


def _acquire(lock: PathLock) -> None:
    if not lock.acquire(blocking=False):
        log.info("waiting for another wikitop process that is using %s", lock.path)
        lock.acquire()


def _shared_lock(path: Path) -> _SharedLock:
    with _shared_guard:
        if path not in _shared:
            _shared[path] = _SharedLock(path)
        return _shared[path]


def hold(path: Path) -> None:
    """Wait until no other process holds ``path``, then hold it for this process."""
    shared = _shared_lock(path)
    with shared.guard:
        if not shared.holds:
            _acquire(shared.lock)
        shared.holds += 1


def try_hold(path: Path) -> bool:
    """Hold ``path`` for this process if no other process holds it; False if one does."""
    shared = _shared_lock(path)
    with shared.guard:
        if not shared.holds and not shared.lock.acquire(blocking=False):
            return False
        shared.holds += 1
    return True


def release(path: Path) -> None:
    """Undo one ``hold`` (or successful ``try_hold``) of ``path``."""
    shared = _shared_lock(path)
    with shared.guard:
        if shared.holds:
            shared.holds -= 1
            if not shared.holds:
                shared.lock.release()


@contextlib.contextmanager
def holding(paths: Iterable[Path]) -> Iterator[None]:
    """Hold every path (in sorted order, so that processes holding several cannot deadlock)."""
    held: list[Path] = []
    try:
        for path in sorted(set(paths)):
            hold(path)
            held.append(path)
        yield
    finally:
        for path in reversed(held):
            release(path)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold ``path`` against every other process and thread for the block."""
    lock = PathLock(path)
    _acquire(lock)
    try:
        yield
    finally:
        lock.release()


def try_exclusive(path: Path) -> PathLock | None:
    """The acquired lock of ``path`` (to release), or None when any process (this one too) holds it."""
    lock = PathLock(path)
    return lock if lock.acquire(blocking=False) else None
