"""The trigger workflow's side of push streams (``StreamProvider`` sources): their health in
its state and status, and the rule that keeps acked messages from being lost.

A stream's runtime acknowledges upstream as soon as the signal carrying the events is
persisted; the broker then forgets them. So a stream batch is never dropped the way a pull
source's stale batch is (a pull source resumes from its cursor, a stream cannot):

- from a source of an older config version, while enabled: accepted like any batch, with
  the verdicts it was decided with (those messages were received before the change reached
  the source, exactly like events already pending at a config change);
- after a disable: held in the state (``held``, shown in the status), carried through
  completion and continue-as-new, and accepted when the trigger is enabled again.

Workflow code: deterministic, imported through the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.trigger import EventBatch, StreamReport, StreamStatus, TriggerState
    from triggers.core.events import Event

if TYPE_CHECKING:
    from workflows.trigger import TriggerWorkflow

# workflow.patched id: stream sources run as one long activity (no fixed lifetime).
LONG_LIVED_PATCH = "stream-source-long-lived"
# A stream source's activity ends when cancelled (config change, disable, continue-as-new),
# at a worker stop or on an error, not on a timer; the heartbeat timeout notices a dead
# worker. This only bounds an activity that heartbeats forever without doing anything.
STREAM_START_TO_CLOSE_DAYS = 30
# workflow.patched id: a stream trigger's workflow continues as new at its own marks only.
LONG_HISTORY_PATCH = "stream-trigger-long-history"
# Each continue-as-new ends the source's activity, and with it the broker connection (and
# a Kafka group's rebalance). An event costs the trigger's history about 13 events (its
# signal, the run's start, started and completed, and their workflow tasks), so the
# server's suggestion (at 4 Ki events) would reconnect a stream of 1 event/s every ~5 min.
# A stream trigger's workflow ignores that suggestion and continues at this length, or at
# the byte and signal marks every trigger has (8 MiB, 4,000): far below the server's hard
# limits (50 Ki events, 50 MiB, 10 Ki signals); replaying such a history after a cache
# eviction costs a few seconds of one worker's CPU.
CONTINUE_AT_LENGTH = 30_000
# Held events kept at most (each disable adds at most one source's in-flight messages).
MAX_HELD = 5_000


def status_of(state: TriggerState) -> StreamStatus:
    if state.stream is None:
        state.stream = StreamStatus()
    return state.stream


def report(state: TriggerState, rep: StreamReport) -> None:
    """Fold a stream runtime's report (it rides on every signal it sends) into the state."""
    st = status_of(state)
    if rep.state == "paused" and not st.paused_by_backpressure:
        st.pauses += 1
    st.state = rep.state
    st.paused_by_backpressure = rep.state == "paused"
    st.lag, st.pending = rep.lag, rep.pending
    st.dead_letters += rep.dead_lettered
    if rep.last_event_at is not None:
        st.last_event_at = rep.last_event_at


def connecting(state: TriggerState) -> None:
    """The workflow starts a stream source's activity: a new connection."""
    st = status_of(state)
    if st.connections:
        st.reconnects += 1
    st.connections += 1
    st.state = "connecting"
    st.paused_by_backpressure = False


def set_state(state: TriggerState, value: str) -> None:
    st = status_of(state)
    st.state = value
    st.paused_by_backpressure = False


def refused(wf: TriggerWorkflow, batch: EventBatch) -> bool:
    """Whether the workflow refuses a source's batch: one of an older config version or of
    a disabled trigger. A pull source's is dropped (nothing accepted, its cursor not moved,
    so the next source resumes before these events); a stream's is held after a disable
    and accepted, with its verdicts, from an older config. Folds a stream's report in."""
    if batch.stream is not None:
        report(wf.state, batch.stream)
    spec = wf.spec
    if batch.config_version is None or (
        spec.enabled and batch.config_version == spec.config_version
    ):
        return False
    if batch.stream is None:
        wf.state.stale_dropped += len(batch.events)
        return True
    if wf.spec.enabled:
        return False
    held = wf.state.held
    held.extend(batch.events)
    if len(held) > MAX_HELD:
        # Beyond any real case (a disable holds one source's in flight); bounded anyway.
        wf.state.stale_dropped += len(held) - MAX_HELD
        del held[: len(held) - MAX_HELD]
    return True


def release_held(wf: TriggerWorkflow) -> list[Event]:
    """The held events, once the trigger is enabled (and no longer held)."""
    if not wf.spec.enabled or not wf.state.held:
        return []
    held, wf.state.held = wf.state.held, []
    return held
