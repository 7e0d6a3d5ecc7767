"""The live event log's entries: each of the trigger's recent events with its outcome
(started, with its run in the Temporal Web UI; filtered; condition error; start failed;
pending while its run is on its way), the duplicates the trigger workflow dropped, and
the stream messages that became dead letters (with their reason and source position; a
redriven one links to its run). Derived from the trigger workflow's status and recent
events (its queries), from Temporal (the workflow keeps events without their verdict) and
from the dead-letter store."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from api import control, dryrun
from api.state import AppState
from triggers.contracts.trigger import RecentEvent, TriggerStatus
from triggers.core.events import Event, run_workflow_id
from triggers.infra import dead_letters
from triggers.infra.models import DeadLetter, Trigger

FINAL = {"started", "filtered", "condition error", "start failed"}
SAMPLE_FIELDS = ("id", "key", "source", "type", "time", "subject", "data", "headers")
MAX_SEEN = 200
# The newest dead letters the log looks at on each update.
DEAD_LETTERS_SHOWN = 20


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
    # The page's row this entry is (replaced when the entry changes).
    row: str = ""


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
        self._letters: dict[str, Entry] = {}

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

    async def _letter(self, row: DeadLetter, known: Entry | None) -> Entry:
        detail = f"{row.reason} (position {row.key}, {row.attempts} attempt(s))"
        entry = Entry(
            event_id=row.key,
            key=row.key,
            time=dead_letters.utc(row.last_seen).isoformat(timespec="seconds"),
            type="",
            outcome="dead-lettered",
            detail=detail,
            row=f"dead-letter:{row.id}",
        )
        if not row.redrive_run_id:
            return entry
        entry = dataclasses.replace(entry, detail=f"{detail}; redriven", run_id=row.redrive_run_id)
        if known is not None and known.run_url and known.run_id == row.redrive_run_id:
            return dataclasses.replace(entry, run_url=known.run_url)
        try:
            run = await control.current_run(self._state.client, row.redrive_run_id)
        except (RPCError, TimeoutError):
            run = None
        if run is None:
            return entry
        return dataclasses.replace(entry, run_url=run_url(self._state, row.redrive_run_id, run))

    async def _dead_letters(self, db: AsyncSession) -> list[Entry]:
        rows, _ = await dead_letters.list_page(
            db, trigger_id=self._trigger.id, limit=DEAD_LETTERS_SHOWN
        )
        out = []
        for row in reversed(rows):  # oldest first: the page puts the newest on top
            known = self._letters.get(str(row.id))
            entry = await self._letter(row, known)
            if entry != known:
                self._letters[str(row.id)] = entry
                out.append(entry)
        return out

    async def update(self, status: TriggerStatus, db: AsyncSession | None = None) -> list[Entry]:
        """What is new or changed since the last call; ``db``: also the dead letters."""
        out: list[Entry] = []
        if db is not None:
            out += await self._dead_letters(db)
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
