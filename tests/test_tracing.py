"""One trace from an event's entry to its run (README "Tracing"), recorded by an in-memory
span exporter: a webhook request's span, the signal, the trigger workflow's handling, the
child's start and the run's own spans share one trace with the documented parents; a pull
source's batch has a span of its own, which each run's trace links to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.worker import Replayer

from tests.conftest import Stack, eventually, stack_with_worker
from tests.helpers import SECRET, github_body, github_trigger, post_github
from triggers.core import vendor_signatures
from triggers.core.events import (
    Event,
    bound_event,
    run_workflow_id,
    trace_id_of,
    valid_traceparent,
)
from triggers.infra import tracing
from workers.devserver import DevServer
from workflows.run import RunWorkflow
from workflows.trigger import TriggerWorkflow

MARKER = "body-marker-7f3a9c"


class _Gate(SimpleSpanProcessor):
    """Exports only while a test of this module runs: the process keeps one tracer
    provider, and other tests should not fill this exporter."""

    active = False
    installed = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


_exporter = InMemorySpanExporter()
_gate = _Gate(_exporter)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not _Gate.installed:
        assert tracing.configure("temporal-triggers-tests", processor=_gate)
        _Gate.installed = True
    _exporter.clear()
    _gate.active = True
    yield _exporter
    _gate.active = False
    _exporter.clear()


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter, temporal: DevServer, sqlite_url: str, secret_keys: str
) -> AsyncIterator[Stack]:
    """The stack on a client with the SDK's OpenTelemetry plugin (its worker gets it too)."""
    client = await Client.connect(temporal.address, plugins=tracing.temporal_plugins())
    async with stack_with_worker(sqlite_url, client, secret_keys) as s:
        yield s


def _one(found: Sequence[ReadableSpan], name: str, **attrs: Any) -> ReadableSpan:
    hits = [
        s
        for s in found
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attrs.items())
    ]
    assert len(hits) == 1, (name, attrs, [(s.name, dict(s.attributes or {})) for s in found])
    return hits[0]


def _parent_of(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None, child.name
    assert child.parent.span_id == parent.context.span_id, (child.name, parent.name)
    assert child.context.trace_id == parent.context.trace_id, (child.name, parent.name)


async def _run_span(spans: InMemorySpanExporter, run_id: str) -> ReadableSpan:
    async def ended() -> ReadableSpan | None:
        for s in spans.get_finished_spans():
            if s.name == "RunWorkflow:RunWorkflow" and s.attributes:
                if s.attributes.get("temporalWorkflowID") == run_id:
                    return s
        return None

    return await eventually(ended, timeout=30)


def _no_secrets(found: Sequence[ReadableSpan]) -> None:
    for s in found:
        for value in (s.attributes or {}).values():
            assert SECRET not in str(value) and MARKER not in str(value), (s.name, value)


async def test_a_webhook_and_its_run_are_one_trace(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    s = traced
    tid = (await s.create_trigger(github_trigger()))["id"]
    # A first delivery, so the next one's signal finds the trigger workflow past its start
    # (signals that arrive while it resumes its predecessor are handled after that, outside
    # their signal's span: their events are then parented on their webhook span directly).
    first = await post_github(s.http, tid, delivery=f"warm-{uuid.uuid4().hex[:8]}")
    assert first.status_code == 202, first.text
    await eventually(
        lambda: s.client.get_workflow_handle(
            run_workflow_id(tid, first.json()["event_key"])
        ).describe(),
        timeout=30,
    )
    delivery = f"trace-{uuid.uuid4().hex[:8]}"
    r = await post_github(
        s.http, tid, delivery=delivery, body=github_body(note=MARKER, pad="x" * 3000)
    )
    assert r.status_code == 202, r.text
    run_id = run_workflow_id(tid, delivery)
    await eventually(lambda: s.client.get_workflow_handle(run_id).describe(), timeout=30)
    await s.client.get_workflow_handle(run_id).result()
    run = await _run_span(spans, run_id)

    found = spans.get_finished_spans()
    webhook = _one(
        found, "POST /webhooks/{preset}/{trigger_id}", **{"triggers.event_key": delivery}
    )
    assert webhook.parent is None
    assert webhook.attributes and webhook.attributes["http.response.status_code"] == 202
    assert webhook.attributes["triggers.trigger_id"] == tid
    trace_id = webhook.context.trace_id
    mine = [x for x in found if x.context.trace_id == trace_id]
    signal = _one(mine, "SignalWithStartWorkflow:TriggerWorkflow")
    handled = _one(mine, "HandleSignal:events")
    event = _one(mine, "trigger.event", **{"triggers.event_key": delivery})
    start = _one(mine, "trigger.start_run", **{"triggers.run_workflow_id": run_id})
    child = _one(mine, "StartChildWorkflow:RunWorkflow")
    _parent_of(signal, webhook)
    _parent_of(handled, signal)
    _parent_of(event, handled)
    _parent_of(start, event)
    _parent_of(child, start)
    _parent_of(run, child)
    assert event.attributes and event.attributes["triggers.result"] == "passed"
    assert start.attributes and start.attributes["triggers.outcome"] == "started"
    # The run's own spans are in the same trace, below the run's span: the body is over the
    # claim-check threshold, so the run loads it with an activity.
    load = _one(mine, "StartActivity:load_payload")
    _parent_of(load, run)
    _parent_of(_one(mine, "RunActivity:load_payload"), load)
    _no_secrets(found)

    # Tracing changes no command: the traced history replays with and without the plugin,
    # and a replay exports nothing.
    before = len(spans.get_finished_spans())
    for wid in (f"trigger:{tid}", run_id):
        history = await s.client.get_workflow_handle(wid).fetch_history()
        for plugins in (tracing.temporal_plugins(), []):
            replayer = Replayer(workflows=[TriggerWorkflow, RunWorkflow], plugins=plugins)
            await replayer.replay_workflow(history)
    assert len(spans.get_finished_spans()) == before


async def test_a_senders_traceparent_is_a_link_and_a_bad_one_is_ignored(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    s = traced
    tid = (await s.create_trigger(github_trigger()))["id"]
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for delivery, header in (
        ("linked", theirs),
        ("bad", "00-" + "z" * 32 + "-" + "1" * 16 + "-01"),
    ):
        body = github_body()
        headers = {
            "content-type": "application/json",
            "X-GitHub-Event": "push",
            "traceparent": header,
            **vendor_signatures.sign_github(SECRET, body, delivery_id=delivery),
        }
        r = await s.http.post(f"/webhooks/github/{tid}", content=body, headers=headers)
        assert r.status_code == 202, r.text
    found = spans.get_finished_spans()
    linked = _one(found, "POST /webhooks/{preset}/{trigger_id}", **{"triggers.event_key": "linked"})
    assert linked.parent is None
    assert [f"{link.context.trace_id:032x}" for link in linked.links] == [theirs[3:35]]
    assert linked.context.trace_id != int(theirs[3:35], 16)
    bad = _one(found, "POST /webhooks/{preset}/{trigger_id}", **{"triggers.event_key": "bad"})
    assert bad.parent is None and not bad.links


async def test_a_pull_sources_batch_has_a_span_that_its_run_links_to(
    traced: Stack, spans: InMemorySpanExporter
) -> None:
    s = traced
    body = {"name": "list", "provider": "test_list", "config": {"items": ["a"]}}
    tid = (await s.create_trigger(body))["id"]
    run_id = run_workflow_id(tid, "a")
    await eventually(lambda: s.client.get_workflow_handle(run_id).describe(), timeout=30)
    await s.client.get_workflow_handle(run_id).result()
    run = await _run_span(spans, run_id)

    found = spans.get_finished_spans()
    batch = _one(found, "source.batch", **{"triggers.trigger_id": tid})
    assert batch.attributes and batch.attributes["triggers.events"] == 1
    assert batch.attributes["triggers.provider"] == "test_list"
    assert batch.parent is None
    # The run's trace begins where the trigger workflow took the event, linked to the batch.
    mine = [x for x in found if x.context.trace_id == run.context.trace_id]
    event = _one(mine, "trigger.event", **{"triggers.event_key": "a"})
    assert event.parent is None
    assert [(lk.context.trace_id, lk.context.span_id) for lk in event.links] == [
        (batch.context.trace_id, batch.context.span_id)
    ]
    start = _one(mine, "trigger.start_run", **{"triggers.run_workflow_id": run_id})
    child = _one(mine, "StartChildWorkflow:RunWorkflow")
    _parent_of(start, event)
    _parent_of(child, start)
    _parent_of(run, child)
    # The batch's signal is handled in the batch's own trace.
    handled = [
        x
        for x in found
        if x.name == "HandleSignal:events" and x.context.trace_id == batch.context.trace_id
    ]
    assert handled, [x.name for x in found]
    assert run.context.trace_id != batch.context.trace_id


def test_tracing_is_off_unless_the_otel_variables_ask_for_it() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.exporters_from({}) == []
    assert tracing.exporters_from({"OTEL_TRACES_EXPORTER": "none", **endpoint}) == []
    assert tracing.exporters_from({"OTEL_SDK_DISABLED": "true", **endpoint}) == []
    assert [type(e).__name__ for e in tracing.exporters_from(endpoint)] == ["OTLPSpanExporter"]
    both = tracing.exporters_from({"OTEL_TRACES_EXPORTER": "console,otlp"})
    assert [type(e).__name__ for e in both] == ["ConsoleSpanExporter", "OTLPSpanExporter"]
    with pytest.raises(tracing.TracingConfigError, match="unknown exporter"):
        tracing.exporters_from({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(tracing.TracingConfigError, match="not supported"):
        tracing.exporters_from({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "x"})


def test_an_events_trace_context_is_a_bounded_valid_traceparent_or_nothing() -> None:
    good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert valid_traceparent(good) == good
    assert trace_id_of(good) == "0af7651916cd43dd8448eb211c80319c"
    for bad in (
        good.upper(),
        good + "-extra",
        "01" + good[2:],
        "00-" + "0" * 32 + "-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
        "x" * 10_000,
        "",
    ):
        assert valid_traceparent(bad) is None, bad
        event = Event(id="i", key="k", source="s", type="t", time="now", traceparent=bad)
        assert bound_event(event).traceparent is None
