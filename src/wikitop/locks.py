"""Locks between processes on the files of the cache and of a local result store.

A guarded file has an empty lock file beside it, ``NAME.lock``, locked with flock
(filelock): the kernel releases it when its process dies, so a lock is never stale.
Lock files stay after release, on purpose: deleting one would let a process that
waits on the old file and a newcomer that creates a new one both hold "the" lock.

``hold`` and ``release`` share one lock per file between the threads of a process
(counted, so each hold needs its release): threads coordinate among themselves with
their own locks, and these keep other processes out. ``exclusive`` and
``try_exclusive`` take a lock of their own, which keeps out the other threads too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"

_shared: dict[Path, FileLock] = {}
_shared_guard = threading.Lock()


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


def _new_lock(path: Path, thread_local: bool) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(lock_path(path), thread_local=thread_local)


def _acquire(lock: FileLock, path: Path) -> None:
    try:
        lock.acquire(blocking=False)
    except Timeout:
        log.info("waiting for another wikitop process that is using %s", path)
        lock.acquire()


def _shared_lock(path: Path) -> FileLock:
    with _shared_guard:
        if path not in _shared:
            _shared[path] = _new_lock(path, thread_local=False)
        return _shared[path]


def hold(path: Path) -> None:
    """Wait until no other process holds ``path``, then hold it for this process."""
    _acquire(_shared_lock(path), path)


def try_hold(path: Path) -> bool:
    """Hold ``path`` for this process if no other process holds it; False if one does."""
    try:
        _shared_lock(path).acquire(blocking=False)
    except Timeout:
        return False
    return True


def release(path: Path) -> None:
    """Undo one ``hold`` (or successful ``try_hold``) of ``path``."""
    _shared_lock(path).release()


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
    lock = _new_lock(path, thread_local=True)
    _acquire(lock, path)
    try:
        yield
    finally:
        lock.release()


def try_exclusive(path: Path) -> FileLock | None:
    """The acquired lock of ``path`` (to release), or None when any process (this one too) holds it."""
    lock = _new_lock(path, thread_local=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        return None
    return lock
