"""Tracing: one trace from an event's entry to its run's spans (README "Tracing").

Off unless the standard ``OTEL_*`` variables turn it on: ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``; ``none`` is off), or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (which means ``otlp``); ``OTEL_SDK_DISABLED=true``
turns it off whatever else is set. Off, nothing is installed: spans are the OpenTelemetry
API's no-op ones and events carry no trace context.

On, the process gets a replay-safe tracer provider (``create_tracer_provider`` of
``temporalio.contrib.opentelemetry``: span ids in workflow code come from the workflow's
deterministic randomness, and nothing is exported while a workflow replays), and the
Temporal client gets ``OpenTelemetryPlugin``, which carries the current trace context in
the headers of every start, signal, activity and child workflow, and makes spans of their
handling. Sampling (``OTEL_TRACES_SAMPLER``), the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``) and the OTLP exporter's endpoint, headers and timeout are
read from the environment by the OpenTelemetry SDK itself.

Span attributes are ids, names and sizes only: never a secret, a header value or a body.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from temporalio.contrib.opentelemetry import (
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
    create_tracer_provider,
)

from triggers.core.events import Event, valid_traceparent

log = logging.getLogger("triggers.tracing")

TRACER_NAME = "temporal-triggers"
_propagator = TraceContextTextMapPropagator()
_provider: ReplaySafeTracerProvider | None = None


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for an exporter this installation cannot make."""


def exporters_from(env: Mapping[str, str]) -> list[SpanExporter]:
    """The span exporters the ``OTEL_*`` variables in ``env`` ask for (none: tracing off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if not names and (
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        names = ["otlp"]
    out: list[SpanExporter] = []
    for name in names:
        if name == "none":
            return []
        if name == "console":
            out.append(ConsoleSpanExporter())
        elif name == "otlp":
            out.append(_otlp(env))
        else:
            raise TracingConfigError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
    return out


def _otlp(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise TracingConfigError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the package "
                "opentelemetry-exporter-otlp-proto-grpc; http/protobuf is built in"
            ) from None
        exporter: SpanExporter = GrpcExporter()
        return exporter
    raise TracingConfigError(f"OTLP protocol {protocol!r} is not supported (http/protobuf, grpc)")


def configure(
    service_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    processor: SpanProcessor | None = None,
) -> bool:
    """Install tracing for this process when the environment (or ``processor``, for tests
    and embedders) asks for it; whether tracing is on. The first call that installs wins:
    a process has one tracer provider.

    Raises:
        TracingConfigError: the variables name an exporter that cannot be made.
    """
    global _provider
    if _provider is None:
        exporters = exporters_from(os.environ if environ is None else environ)
        if not exporters and processor is None:
            return False
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service_name}))
        _provider = create_tracer_provider(resource=resource)
        for exporter in exporters:
            _provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(_provider)
        log.info("tracing on: %s", ", ".join(type(e).__name__ for e in exporters) or "in process")
    if processor is not None:
        _provider.add_span_processor(processor)
    return True


def enabled() -> bool:
    return _provider is not None


def temporal_plugins() -> list[OpenTelemetryPlugin]:
    """The Temporal client's plugins: the SDK's OpenTelemetry plugin when tracing is on.
    Workers built on the client get it from there (never add it to both)."""
    return [OpenTelemetryPlugin(add_temporal_spans=True)] if enabled() else []


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def traceparent() -> str | None:
    """The current span as a W3C ``traceparent``; None without a valid one (tracing off)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return valid_traceparent(carrier.get("traceparent"))


def _span_context(text: str | None) -> trace.SpanContext | None:
    valid = valid_traceparent(text)
    if valid is None:
        return None
    found = trace.get_current_span(_propagator.extract({"traceparent": valid})).get_span_context()
    return found if found.is_valid else None


def current_context() -> otel_context.Context:
    return otel_context.get_current()


@contextmanager
def attached(context: otel_context.Context | None) -> Iterator[None]:
    """Run the block in ``context`` (None: the current one)."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def webhook_span(preset: str, sender_traceparent: str | None) -> Iterator[trace.Span]:
    """The server span of one webhook request, the root of the event's trace. A sender's
    own ``traceparent`` (validated, 55 characters) is a link, not the parent: the sender is
    outside this service, and its trace ids are not ours to continue."""
    sender = _span_context(sender_traceparent)
    links = [Link(sender)] if sender is not None else None
    with tracer().start_as_current_span(
        "POST /webhooks/{preset}/{trigger_id}",
        context=otel_context.Context(),
        kind=SpanKind.SERVER,
        links=links,
        attributes={
            "http.request.method": "POST",
            "http.route": "/webhooks/{preset}/{trigger_id}",
            "triggers.preset": preset[:64],
        },
    ) as span:
        yield span


@contextmanager
def batch_span(trigger_id: str, provider: str, events: Sequence[Event]) -> Iterator[list[Event]]:
    """One span per batch a source signals (its own trace, linked to the source activity's
    span); yields the batch's events, each carrying the batch span as its trace context
    with ``trace_link`` set, so that each run starts a trace of its own linked to it."""
    if not enabled():
        yield list(events)
        return
    here = trace.get_current_span().get_span_context()
    with tracer().start_as_current_span(
        "source.batch",
        context=otel_context.Context(),
        kind=SpanKind.PRODUCER,
        links=[Link(here)] if here.is_valid else None,
        attributes={
            "triggers.trigger_id": trigger_id,
            "triggers.provider": provider,
            "triggers.events": len(events),
        },
    ):
        parent = traceparent()
        yield [replace(e, traceparent=parent, trace_link=True) for e in events]


def annotate(attributes: Mapping[str, str | int | bool]) -> None:
    """Set ids and sizes on the current span (nothing when it does not record)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(dict(attributes))
