"""The verdict on an event, decided where it enters (the webhook route, a source activity).

The trigger workflow used to evaluate the condition and the input mapping inside its
workflow task, where one heavy condition (``event.data.items.all(x, x >= 0)`` over a
199 KB body: ~2.5 s) ran past the SDK's 2 s deadlock limit and wedged the trigger. Here
the same decision (:func:`triggers.core.conditions.decide_run`, one piece of code for the logic)
runs under a CPU-time budget and is recorded in ``Event.verdict``; the workflow only
reads it.
"""

from __future__ import annotations

import asyncio

from triggers.core.conditions import EVALUATION_BUDGET_SECONDS, TriggerInfo, decide_run
from triggers.core.events import Event, Verdict

__all__ = ["EVALUATION_BUDGET_SECONDS", "verdict_for", "verdicts_for"]


def verdict_for(
    condition: str | None,
    input_mapping: str | None,
    event: Event,
    trigger: TriggerInfo,
    *,
    config_version: int,
    budget_seconds: float = EVALUATION_BUDGET_SECONDS,
) -> Verdict:
    """The trigger's condition, then its target's input mapping, on one event.

    ``counted`` is what the trigger counts among its condition outcomes: every outcome of
    a condition, and, with no condition, only a failed mapping. An evaluation that needs
    more than ``budget_seconds`` of this thread's CPU time is ``error`` ("condition exceeded
    its evaluation budget (100 ms CPU)"), for this event only. Error messages never hold
    the event's values. Blocks for up to about ``budget_seconds`` of CPU: on an event loop,
    use :func:`verdicts_for`.
    """
    if not condition and not input_mapping:
        return Verdict("passed", counted=False, config_version=config_version)
    decision = decide_run(condition, input_mapping, event, trigger, budget_seconds=budget_seconds)
    result = decision.outcome.result
    return Verdict(
        result=result,
        error=decision.outcome.error,
        counted=bool(condition) or result == "error",
        mapped=decision.mapped,
        input=decision.input,
        config_version=config_version,
    )


async def verdicts_for(
    condition: str | None,
    input_mapping: str | None,
    events: list[Event],
    trigger: TriggerInfo,
    *,
    config_version: int,
    budget_seconds: float = EVALUATION_BUDGET_SECONDS,
) -> list[Verdict]:
    """:func:`verdict_for` on each of ``events``, in order, in one worker thread, so that the
    event loop is never blocked. The batch's evaluation uses at most about
    ``len(events) * budget_seconds`` of that thread's CPU time (each check fires within
    ~0.5 ms of its deadline, and an interrupted event then frees what it built), plus the
    garbage collector's full collections that happen meanwhile (forgiven up to
    ``cel_budget.GC_CREDIT_BUDGETS`` budgets an event; near zero after ``gc.freeze()``).
    Wall time is more when the machine is busy. Without a condition and a mapping, no
    thread is used."""
    if not condition and not input_mapping:
        return [Verdict("passed", counted=False, config_version=config_version) for _ in events]

    def decide_all() -> list[Verdict]:
        return [
            verdict_for(
                condition,
                input_mapping,
                event,
                trigger,
                config_version=config_version,
                budget_seconds=budget_seconds,
            )
            for event in events
        ]

    return await asyncio.to_thread(decide_all)
