"""The live event log's entries: each of the trigger's recent events with its outcome
(started, with its run in the Temporal Web UI; filtered; condition error; start failed;
pending while its run is on its way), and the duplicates the trigger workflow dropped.
Derived from the trigger workflow's status and recent events (its queries) and from
Temporal: the workflow keeps events without their verdict. Dead-lettered messages are
not in the log yet (they never become events; see the dead-letter API)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from api import control, dryrun
from api.state import AppState
from triggers.contracts.trigger import RecentEvent, TriggerStatus
from triggers.core.events import Event, run_workflow_id
from triggers.infra.models import Trigger

FINAL = {"started", "filtered", "condition error", "start failed"}
SAMPLE_FIELDS = ("id", "key", "source", "type", "time", "subject", "data", "headers")
MAX_SEEN = 200


@dataclass(frozen=True)
class Entry:
    event_id: str
    key: str
    time: str
    type: str
    outcome: str
    detail: str = ""
    run_id: str = ""
    run_url: str = ""


def sample_of(event: Event) -> dict[str, Any]:
    """An event as a dry run's sample event."""
    values = dataclasses.asdict(event)
    return {k: values[k] for k in SAMPLE_FIELDS if values.get(k) is not None}


def run_url(state: AppState, workflow_id: str, run: str) -> str:
    base = state.settings.temporal_ui_url.rstrip("/")
    if not base:
        return ""
    ns = quote(state.settings.temporal_namespace, safe="")
    return f"{base}/namespaces/{ns}/workflows/{quote(workflow_id, safe='')}/{quote(run)}/history"


class Log:
    """What the page was told so far; ``update`` gives what is new or changed."""

    def __init__(self, state: AppState, trigger: Trigger) -> None:
        self._state = state
        self._trigger = trigger
        self._shown: dict[str, Entry] = {}
        self._duplicates: int | None = None

    async def _entry(self, event: RecentEvent, status: TriggerStatus) -> Entry:
        base = Entry(
            event_id=event.id, key=event.key, time=event.time, type=event.type, outcome="pending"
        )
        errors = {c.get("event_id"): c.get("error", "") for c in status.condition_errors}
        if event.id in errors:
            return dataclasses.replace(base, outcome="condition error", detail=errors[event.id])
        failures = {f.event_id: f.error for f in status.start_failures}
        if event.id in failures:
            return dataclasses.replace(base, outcome="start failed", detail=failures[event.id])
        workflow_id = run_workflow_id(str(self._trigger.id), event.key)
        run = await control.current_run(self._state.client, workflow_id)
        if run is not None:
            return dataclasses.replace(
                base,
                outcome="started",
                run_id=workflow_id,
                run_url=run_url(self._state, workflow_id, run),
            )
        (decided,) = dryrun.try_events(self._trigger, [(event, event.data_truncated)])
        if not decided.would_start:
            return dataclasses.replace(base, outcome="filtered", detail="condition false")
        return base

    async def update(self, status: TriggerStatus) -> list[Entry]:
        out: list[Entry] = []
        if self._duplicates is not None and status.duplicates > self._duplicates:
            n = status.duplicates - self._duplicates
            out.append(
                Entry(
                    event_id="",
                    key="",
                    time=status.last_event_time or "",
                    type="",
                    outcome="duplicate",
                    detail=f"{n} repeated event(s) dropped",
                )
            )
        self._duplicates = status.duplicates
        if not status.running:
            return out
        for event in await control.recent_events(self._state.client, str(self._trigger.id)):
            known = self._shown.get(event.key)
            if known is not None and known.outcome in FINAL:
                continue
            entry = await self._entry(event, status)
            if entry != known:
                self._shown[event.key] = entry
                out.append(entry)
        if len(self._shown) > MAX_SEEN:
            for key in list(self._shown)[: len(self._shown) - MAX_SEEN]:
                del self._shown[key]
        return out
