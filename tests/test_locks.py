"""Locks whose lock file their holder deletes (as ``cache prune`` does): the interleavings
are played step by step, by running the other processes' steps between a locker's open of
the lock file and its lock (flock locks open files, so one process can play them all)."""

from __future__ import annotations

from wikitop import locks


def deleting_holder_between_open_and_lock(monkeypatch, guarded, then=None):
    """Make the next locker's first lock wait until A, having locked the same file, deletes it
    and releases; then ``then`` runs (another process's step). Returns what ``then`` returned."""
    real_lock_descriptor = locks.lock_descriptor
    played = []

    def lock_descriptor(descriptor, blocking):
        if not played:
            played.append(None)
            holder = locks.try_exclusive(guarded)
            assert holder is not None
            holder.delete()
            holder.release()
            played[0] = then() if then else None
        return real_lock_descriptor(descriptor, blocking=blocking)

    monkeypatch.setattr(locks, "lock_descriptor", lock_descriptor)
    return played


def test_a_locker_of_a_deleted_lock_file_contends_for_the_new_one(tmp_path, monkeypatch):
    """B opens the lock file; A, holding it, deletes it and releases; C creates a new one and
    locks it; B's lock of the old file then succeeds, but B must see that it no longer names
    the lock file and contend for C's, which C holds."""
    guarded = tmp_path / "pageviews-20200122-030000.gz"
    played = deleting_holder_between_open_and_lock(monkeypatch, guarded, then=lambda: locks.try_exclusive(guarded))
    assert locks.try_exclusive(guarded) is None
    [c] = played
    assert c is not None
    c.release()
    assert locks.try_exclusive(guarded) is not None


def test_a_locker_of_a_deleted_lock_file_holds_the_new_one(tmp_path, monkeypatch):
    """B opens the lock file; A deletes it and releases; B's lock of the old file succeeds, so
    B locks again the file it creates, which a newcomer then finds held."""
    guarded = tmp_path / "_SUCCESS"
    deleting_holder_between_open_and_lock(monkeypatch, guarded)
    locks.hold(guarded)
    try:
        assert locks.lock_path(guarded).exists()
        assert locks.try_exclusive(guarded) is None
    finally:
        locks.release(guarded)
    assert locks.try_exclusive(guarded) is not None


def test_a_lock_folder_removed_before_the_lock_file_is_made_again(tmp_path):
    """Pruning removes the folders it leaves empty; a locker meanwhile makes them again."""
    guarded = tmp_path / "year=2020" / "month=01" / "_SUCCESS"
    with locks.exclusive(guarded):
        assert locks.lock_path(guarded).exists()
