"""What the trigger workflow tells of each event: a span and a log record where the signal
brings it, where its condition outcome is counted and where its run is started (README
"Tracing" and "Logs").

Workflow code, deterministic: spans come from the replay-safe tracer provider that
``triggers/infra/tracing.py`` installs (span ids from the workflow's seeded randomness, so
a replay makes the same ones; nothing is exported while replaying), or are the API's no-op
spans when tracing is off; ``workflow.logger`` does not log again on replay. No span or log
field holds event data or a header value: ids, names and outcomes only. An event without
trace context (tracing off where it entered, histories of older code) gets no span.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from triggers.contracts.trigger import TriggerSpec
    from triggers.core.events import Event, Verdict, log_fields, valid_traceparent

_TRACER = "temporal-triggers"
_propagator = TraceContextTextMapPropagator()


def _context(event: Event) -> otel_context.Context | None:
    """The event's trace context as a parent; None without a valid one."""
    valid = valid_traceparent(event.traceparent)
    if valid is None:
        return None
    found = _propagator.extract({"traceparent": valid})
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def _traceparent(span: trace.Span) -> str | None:
    c = span.get_span_context()
    if not c.is_valid:
        return None
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


def _attributes(spec: TriggerSpec, event: Event, **more: str) -> dict[str, str]:
    return {
        "triggers.trigger_id": spec.trigger_id,
        "triggers.provider": spec.provider,
        "triggers.event_id": event.id,
        "triggers.event_key": event.key,
        **{f"triggers.{k}": v for k, v in more.items()},
    }


def received(spec: TriggerSpec, event: Event, verdict: Verdict) -> None:
    """A new event: the span ``trigger.event`` (a child of the span the event entered
    under, through the signal's span when it is in the same trace; for a source's batch,
    the root of a trace of its own that links to the batch span) becomes the event's trace
    context, so that its run start, however much later, continues it."""
    parent = _context(event)
    if parent is not None:
        entered = trace.get_current_span(parent).get_span_context()
        here = trace.get_current_span().get_span_context()
        links = None
        context: otel_context.Context | None = parent
        if event.trace_link:
            context, links = otel_context.Context(), [Link(entered)]
        elif here.is_valid and here.trace_id == entered.trace_id:
            context = None  # the signal's handling span, in the event's own trace
        span = trace.get_tracer(_TRACER).start_span(
            "trigger.event",
            context=context,
            links=links,
            attributes=_attributes(spec, event, outcome="accepted", result=verdict.result),
        )
        span.end()
        event.traceparent, event.trace_link = _traceparent(span), False
    fields = log_fields(spec.trigger_id, spec.provider, event)
    workflow.logger.info("event received", extra={**fields, "outcome": "accepted"})


def deduplicated(spec: TriggerSpec, event: Event) -> None:
    """An event whose key the trigger saw lately: dropped, no run."""
    parent = _context(event)
    if parent is not None and not event.trace_link:
        trace.get_tracer(_TRACER).start_span(
            "trigger.event",
            context=parent,
            attributes=_attributes(spec, event, outcome="duplicate"),
        ).end()
    fields = log_fields(spec.trigger_id, spec.provider, event)
    workflow.logger.info("event deduplicated", extra={**fields, "outcome": "duplicate"})


def condition(spec: TriggerSpec, event: Event, verdict: Verdict) -> None:
    """A counted condition outcome (its error text is not logged: it may quote data)."""
    fields = log_fields(spec.trigger_id, spec.provider, event)
    workflow.logger.info("condition %s", verdict.result, extra={**fields, "result": verdict.result})


@dataclass
class Start:
    """What became of one run start: ``started``, ``deduplicated``, ``skipped``, ``failed``."""

    outcome: str = "failed"


@contextmanager
def starting(spec: TriggerSpec, event: Event) -> Iterator[Start]:
    """The span ``trigger.start_run`` around one run's start, current, so the SDK's
    ``StartChildWorkflow`` span (and the run's own, through the start's headers) are its
    children; a log record of the outcome. The block must not raise: a workflow span that
    ends with an exception other than a workflow failure is never exported."""
    start = Start()
    parent = _context(event)
    run_id = log_fields(spec.trigger_id, spec.provider, event)["run_workflow_id"]
    if parent is None:
        yield start
    else:
        span = trace.get_tracer(_TRACER).start_span(
            "trigger.start_run",
            context=parent,
            attributes=_attributes(spec, event, run_workflow_id=run_id),
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            yield start
            span.set_attribute("triggers.outcome", start.outcome)
            span.end()  # not when the block was left by an eviction or a cancel
        finally:
            # A workflow evicted mid-start is closed (GeneratorExit) in another Context,
            # where the token is not valid: nothing to detach there (no error logged).
            with suppress(ValueError):
                token.var.reset(token)
    fields = log_fields(spec.trigger_id, spec.provider, event)
    if start.outcome == "failed":
        return  # logged with its reason where the failure is recorded
    workflow.logger.info(f"run {start.outcome}", extra={**fields, "outcome": start.outcome})
