"""What crosses the Temporal boundary between a trigger workflow and its source activity
(``run_source``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SourceInput:
    trigger_id: str
    config_version: int
    cursor: Any = None
    lifetime_seconds: float = 300.0
    # Waits longer than this end the activity; the workflow sleeps on a durable timer and
    # starts it again shortly before it is due, so idle triggers hold no worker slot.
    park_after_seconds: float = 60.0
    # The previous attempt failed: the activity tells the workflow once it runs again.
    recovering: bool = False


@dataclass
class SourceResult:
    cursor: Any
    events: int
    finished: bool = False
    resume_at: str | None = None
    next_at: str | None = None
