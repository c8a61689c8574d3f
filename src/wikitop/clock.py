"""The time fetching waits on: retry delays, Retry-After and polling for an hour until a deadline.

Passed in, so that a test can hand in a clock of its own and check the schedule without
waiting it out.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep until ``event`` is set or ``seconds`` have passed; whether it was set."""
        return event.wait(seconds)


SYSTEM_CLOCK = Clock()
