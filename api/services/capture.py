""" "Listen for a test event": the next verified delivery to a webhook trigger is captured
and kept here instead of being accepted, so it starts no run; it can then be the dry run's
sample. Held in this API process's memory (bounded, expiring): with several API processes
behind a balancer, the delivery must reach the process that listens."""

from __future__ import annotations

import time
from dataclasses import dataclass

from triggers.core.events import Event

LISTEN_SECONDS = 300
# A captured event is kept this long for the page to show and dry-run it.
KEEP_SECONDS = 900
MAX_CAPTURES = 1000


@dataclass
class Capture:
    armed_until: float
    kept_until: float
    event: Event | None = None


class Captures:
    """Per trigger: listening until a deadline, or holding the event it caught."""

    def __init__(self) -> None:
        self._by_trigger: dict[str, Capture] = {}

    def _sweep(self, now: float) -> None:
        for tid in [t for t, c in self._by_trigger.items() if c.kept_until < now]:
            del self._by_trigger[tid]

    def listen(self, trigger_id: str, *, now: float | None = None) -> Capture:
        """Start (or restart) listening: the next delivery is caught, an earlier catch is
        dropped. ``OverflowError`` when too many triggers listen at once."""
        now = time.monotonic() if now is None else now
        self._sweep(now)
        if trigger_id not in self._by_trigger and len(self._by_trigger) >= MAX_CAPTURES:
            raise OverflowError("too many test-event captures at once; retry in a few minutes")
        capture = Capture(armed_until=now + LISTEN_SECONDS, kept_until=now + KEEP_SECONDS)
        self._by_trigger[trigger_id] = capture
        return capture

    def listening(self, trigger_id: str, *, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        found = self._by_trigger.get(trigger_id)
        return found is not None and found.event is None and found.armed_until >= now

    def catch(self, trigger_id: str, event: Event) -> bool:
        """Keep ``event`` if this trigger listens; ``True`` when it was caught."""
        if not self.listening(trigger_id):
            return False
        self._by_trigger[trigger_id].event = event
        return True

    def get(self, trigger_id: str, *, now: float | None = None) -> Capture | None:
        now = time.monotonic() if now is None else now
        found = self._by_trigger.get(trigger_id)
        return found if found is not None and found.kept_until >= now else None

    def stop(self, trigger_id: str) -> None:
        self._by_trigger.pop(trigger_id, None)
