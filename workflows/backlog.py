"""A trigger workflow's backlog beyond what continue-as-new carries: spilled to the
database in chunks (oldest first) and loaded back, one chunk at a time, once the pending
events run out. Workflow code: deterministic, imported through the sandbox."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.names import SPILL_EVENTS_ACTIVITY, UNSPILL_EVENTS_ACTIVITY
    from triggers.contracts.trigger import (
        SpillInput,
        SpillResult,
        TriggerState,
        UnspillInput,
        UnspillResult,
    )
    from triggers.core.events import Event

SPILL_CHUNK_EVENTS = 200
_SHORT = timedelta(seconds=30)


async def spill(state: TriggerState, trigger_id: str, events: list[Event]) -> None:
    """Store ``events`` (older than anything spilled before) and keep their refs."""
    refs: list[str] = []
    for i in range(0, len(events), SPILL_CHUNK_EVENTS):
        chunk = events[i : i + SPILL_CHUNK_EVENTS]
        result = await workflow.execute_activity(
            SPILL_EVENTS_ACTIVITY,
            SpillInput(trigger_id=trigger_id, events=chunk),
            result_type=SpillResult,
            start_to_close_timeout=_SHORT,
            summary=f"spill {len(chunk)} pending events",
        )
        refs.append(result.ref)
    state.spilled_refs = refs + state.spilled_refs
    state.spilled += len(events)


async def unspill(state: TriggerState) -> None:
    """Load the oldest spilled chunk back in front of the pending events."""
    ref = state.spilled_refs[0]
    try:
        result = await workflow.execute_activity(
            UNSPILL_EVENTS_ACTIVITY,
            UnspillInput(ref=ref),
            result_type=UnspillResult,
            start_to_close_timeout=_SHORT,
            summary="load spilled pending events",
        )
    except ActivityError as err:
        # Only a chunk swept from the database fails for good: say so, go on.
        workflow.logger.error("spilled events %s lost: %s", ref, err.cause or err)
        state.spilled_refs.pop(0)
        state.last_error = f"a spilled backlog chunk could not be loaded: {ref}"
        return
    state.spilled_refs.pop(0)
    state.spilled = max(0, state.spilled - len(result.events))
    state.pending[:0] = result.events
