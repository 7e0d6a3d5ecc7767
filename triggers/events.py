"""The event that flows from a provider to a run (CloudEvents 1.0 attributes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRIGGER_WORKFLOW_PREFIX = "trigger:"
RUN_WORKFLOW_PREFIX = "run:"


@dataclass
class Event:
    """One event accepted from a source.

    ``key`` is the deduplication key: the provider's native delivery id, or a sha256
    fingerprint of the raw payload where the source has none.
    """

    id: str
    key: str
    source: str
    type: str
    time: str
    data: Any = None
    subject: str | None = None
    datacontenttype: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    specversion: str = "1.0"


@dataclass
class EventBatch:
    """Signal payload: events delivered to a trigger workflow in one persisted signal, with
    the source's cursor after them (kept in the workflow's state)."""

    events: list[Event]
    cursor: Any = None


def trigger_workflow_id(trigger_id: str) -> str:
    return f"{TRIGGER_WORKFLOW_PREFIX}{trigger_id}"


def run_workflow_id(trigger_id: str, event_key: str) -> str:
    return f"{RUN_WORKFLOW_PREFIX}{trigger_id}:{event_key}"
