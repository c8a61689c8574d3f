"""A clock for the code under test whose time passes only when it sleeps."""

from __future__ import annotations

import threading

from wikitop.clock import Clock


class ManualClock(Clock):
    """Returns from every sleep at once, having moved its time on by it and noted it in ``sleeps``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()
