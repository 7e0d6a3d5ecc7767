"""The Temporal SDK's metrics, forwarded into the process's registry.

The SDK's Rust core records its own metrics (``temporal_*``: polls, task latencies, slots,
sticky cache, requests) and what workflows record through ``workflow.metric_meter()``. A
:class:`Telemetry` gives the process a ``Runtime`` whose metrics go to a ``MetricBuffer``;
draining it (before every scrape, and every second while :meth:`Telemetry.draining` runs)
sends the trigger workflow's updates to their definitions in :class:`Metrics` and keeps the
SDK's own as they come, counters with Prometheus's ``_total`` suffix. So one registry,
one port, and our buckets and help for the workflow's metrics; the core's own Prometheus
server (``PrometheusConfig``) would be a second port with its own histogram buckets.

The runtime exists before any client: a client (and its workers) reports to the runtime
it was connected with (``Client.connect(runtime=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

from triggers.infra.metrics.registry import Metrics

log = logging.getLogger("triggers.metrics")

# Updates the buffer holds between drains; beyond it the core drops them (and logs). A
# workflow task records a few dozen; drained every second this is far above any rate here.
BUFFER_SIZE = 200_000
DRAIN_INTERVAL_SECONDS = 1.0
# The SDK's histograms are durations in seconds (``MetricBufferDurationFormat.SECONDS``).
SDK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_Key = tuple[tuple[str, str], ...]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(SDK_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        i = next((i for i, b in enumerate(SDK_BUCKETS) if value <= b), len(SDK_BUCKETS))
        self.counts[i] += 1
        self.total += value


@dataclass
class _Family:
    kind: int
    help: str
    series: dict[_Key, float | _Histogram] = field(default_factory=dict)


class SdkMetrics(Collector):
    """The SDK's own metrics as the buffer delivered them, in Prometheus form. Label sets
    are the SDK's (namespace, task_queue, workflow_type, activity_type, operation, ...),
    all bounded by what this process runs."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def add(self, update: BufferedMetricUpdate) -> None:
        metric = update.metric
        key: _Key = tuple(sorted((str(k), str(v)) for k, v in update.attributes.items()))
        with self._lock:
            family = self._families.get(metric.name)
            if family is None:
                family = self._families[metric.name] = _Family(
                    metric.kind, metric.description or metric.name
                )
            value = float(update.value)
            if family.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                hist = family.series.get(key)
                if not isinstance(hist, _Histogram):
                    hist = family.series[key] = _Histogram()
                hist.observe(value)
            elif family.kind == BUFFERED_METRIC_KIND_COUNTER:
                before = family.series.get(key, 0.0)
                family.series[key] = (before if isinstance(before, float) else 0.0) + value
            else:
                family.series[key] = value

    def describe(self) -> list[Metric]:
        return []  # names vary with what the SDK reports: never checked for clashes

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = {n: (f.kind, f.help, dict(f.series)) for n, f in self._families.items()}
        for name, (kind, doc, series) in sorted(families.items()):
            if kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                out = Metric(name, doc, "histogram")
                for key, hist in series.items():
                    if isinstance(hist, _Histogram):
                        _histogram_samples(out, name, dict(key), hist)
            elif kind == BUFFERED_METRIC_KIND_COUNTER:
                out = Metric(name, doc, "counter")
                for key, value in series.items():
                    out.add_sample(f"{name}_total", dict(key), float(value))  # type: ignore[arg-type]
            else:
                out = Metric(name, doc, "gauge")
                for key, value in series.items():
                    out.add_sample(name, dict(key), float(value))  # type: ignore[arg-type]
            yield out


def _histogram_samples(out: Metric, name: str, labels: dict[str, str], hist: _Histogram) -> None:
    running = 0
    for bound, count in zip((*SDK_BUCKETS, math.inf), hist.counts, strict=True):
        running += count
        le = "+Inf" if bound == math.inf else repr(bound)
        out.add_sample(f"{name}_bucket", {**labels, "le": le}, float(running))
    out.add_sample(f"{name}_count", labels, float(running))
    out.add_sample(f"{name}_sum", labels, hist.total)


class Telemetry:
    """A Temporal ``Runtime`` whose metrics end up in ``metrics``."""

    def __init__(self, metrics: Metrics, *, buffer_size: int = BUFFER_SIZE) -> None:
        self.metrics = metrics
        self._buffer = MetricBuffer(buffer_size, MetricBufferDurationFormat.SECONDS)
        self.runtime = Runtime(
            telemetry=TelemetryConfig(metrics=self._buffer, attach_service_name=False)
        )
        self.sdk = SdkMetrics()
        self._lock = threading.Lock()
        metrics.register(self.sdk)
        metrics.registry.before_collect.append(self.drain)

    def drain(self) -> None:
        """Move what the buffer holds into the registry (any thread)."""
        with self._lock:
            updates = self._buffer.retrieve_updates()
            for update in updates:
                attributes: Mapping[str, object] = update.attributes
                if not self.metrics.forward(update.metric.name, update.value, attributes):
                    self.sdk.add(update)

    @contextlib.asynccontextmanager
    async def draining(self, interval: float = DRAIN_INTERVAL_SECONDS) -> AsyncIterator[None]:
        """Drain every ``interval`` seconds while the block runs, so the buffer never
        fills between scrapes (or without any)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    self.drain()
                except Exception as exc:  # a metrics fault must not stop the worker
                    log.warning("draining Temporal metrics failed: %s", type(exc).__name__)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.drain()
