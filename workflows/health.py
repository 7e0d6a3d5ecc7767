"""The trigger workflow's side of the health model (``triggers/contracts/health.py``): what it
records for it (when a run last started, when the source's cursor last moved, the source's
attempts after an error) and the ``health`` its status query answers.

Workflow code. What changes the state runs in signal handlers and the workflow's own tasks
with ``workflow.now()``; the health itself is computed only in the status query, which is
never replayed and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from triggers.contracts.health import (
        ACTIVE,
        DEGRADED,
        DISABLED,
        FAILING,
        FAILING_AFTER,
        FINISHED,
        LAGGING,
        LAGGING_AT,
        PAUSED,
        TriggerHealth,
    )
    from triggers.contracts.trigger import TriggerSpec, TriggerState


def move_cursor(state: TriggerState, cursor: Any) -> None:
    """The source's cursor as a signal or its activity's result brings it (not None)."""
    if cursor != state.cursor:
        state.cursor_moved_at = workflow.now().isoformat()
    state.cursor = cursor


def run_started(state: TriggerState) -> None:
    state.last_run_start = workflow.now().isoformat()


def source_retry(state: TriggerState) -> None:
    """The source loop starts another attempt after an error."""
    state.source_retries += 1


def _query_now() -> datetime:
    """Now, for ages in the status query. Not ``workflow.now()``: in a query that is the
    time of the workflow's last task, which for an idle trigger (a stuck poll, a daily
    cron) is hours old, so a cursor's age would look fresh exactly when it is not. Reading
    the clock is safe here because a query is never replayed and records nothing."""
    with workflow.unsafe.sandbox_unrestricted():
        return max(datetime.now(UTC), workflow.now())


def _age(at: str | None, now: datetime) -> float | None:
    if at is None:
        return None
    try:
        then = datetime.fromisoformat(at)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round(max((now - then).total_seconds(), 0.0), 3)


def of(spec: TriggerSpec, state: TriggerState, backlog: int) -> TriggerHealth:
    """The health the status query answers (only there: it reads the clock)."""
    st = state.stream
    health = TriggerHealth(
        state=ACTIVE,
        last_event_time=state.last_event_time,
        last_run_start=state.last_run_start,
        cursor_age_seconds=(
            None if spec.stream or not spec.source else _age(state.cursor_moved_at, _query_now())
        ),
        lag=st.lag if st else None,
        backlog=backlog,
        reconnects=st.reconnects if st else state.source_retries,
        consecutive_errors=state.consecutive_errors,
        next_retry_at=state.next_retry_at,
        dead_letters=st.dead_letters if st else 0,
        paused_by_backpressure=bool(st and st.paused_by_backpressure),
    )
    health.state, health.reason = _state(spec, state, health)
    return health


def _state(spec: TriggerSpec, state: TriggerState, h: TriggerHealth) -> tuple[str, str | None]:
    """The first state that applies (the order in the contract) and why, in words."""
    error = state.last_error or "unknown error"
    if not spec.enabled:
        return DISABLED, "the trigger is disabled"
    if state.status == "finished":
        return FINISHED, "the source's schedule is over"
    if state.status == "failed":
        return FAILING, f"the source's configuration fails: {error}"
    retry = f"; next retry at {h.next_retry_at}" if h.next_retry_at else ""
    if h.consecutive_errors >= FAILING_AFTER:
        return FAILING, f"{h.consecutive_errors} consecutive source errors: {error}{retry}"
    if state.status == "degraded":
        return (
            DEGRADED,
            f"the source is retrying after {h.consecutive_errors} error(s): {error}{retry}",
        )
    if state.stream is not None and state.stream.state == "reconnecting":
        return DEGRADED, "the stream is reconnecting"
    failures = state.start_failures
    if failures and (state.last_run_start is None or failures[-1].at > state.last_run_start):
        return DEGRADED, f"the latest run start failed: {failures[-1].error}"
    if h.paused_by_backpressure:
        return PAUSED, f"the stream is paused by backpressure ({h.backlog} events not started)"
    behind = max(h.lag or 0, h.backlog)
    if behind >= LAGGING_AT:
        return LAGGING, f"{behind} events behind (lag {h.lag}, backlog {h.backlog})"
    return ACTIVE, None
