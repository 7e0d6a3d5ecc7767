"""Every metric of the service, defined once: name, help, labels, buckets.

One :class:`Metrics` per process (the API's, the worker's; ``triggers dev`` shares one),
holding its own ``prometheus_client`` registry. Counted where each thing happens, once:

- ``triggers_events_received_total{provider}``: at intake, once the event is accepted (the
  webhook route: the signal carrying it persisted, or a repeat the API answered itself; a
  source loop: its signal persisted). A 503 or a failed signal is not counted: the sender
  or the source sends the event again, and it is counted then.
- ``triggers_events_filtered_total{provider,result}``, ``triggers_runs_started_total``,
  ``triggers_latency_seconds``, ``triggers_duplicates_total{stage="recent"|"run_id"}``,
  ``triggers_run_start_failures_total``: in the trigger workflow, through
  ``workflow.metric_meter()`` (replay-safe), forwarded here from the SDK's metric buffer
  (``sdk.py``).
- the rest where named in their help.

Label values from outside (a provider name, a status code, a trigger id) are bounded: each
label takes at most ``MAX_LABEL_VALUES`` distinct values (``MAX_TRIGGER_VALUES`` for
trigger ids), later ones are counted as ``other``. Trigger ids appear only with
``per_trigger`` (``TRIGGERS_METRICS_PER_TRIGGER``): the cardinality is the operator's
choice, and ``/metrics`` is unauthenticated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from triggers.contracts import metrics as names
from triggers.infra.metrics.sources import CONNECTED, SourceGauges
from triggers.providers.stream import StreamHealth

# ``*_created`` series double every counter and histogram for nothing Prometheus needs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# 10 ms .. 5 min: a webhook's run starts in tens of milliseconds; a backlog, a busy worker
# or a source's own event time (a row written minutes before the poll) in seconds to
# minutes. Above 5 min only the count and sum tell (+Inf).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MAX_LABEL_VALUES = 100
MAX_TRIGGER_VALUES = 10_000
MAX_LABEL_CHARS = 64
OTHER = "other"


class _Bounded:
    """A label's values: the first ``limit`` distinct ones as they are, the rest ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value)[:MAX_LABEL_CHARS]
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
        return text


class _Registry(CollectorRegistry):
    """A registry that runs hooks before each collection: the SDK's buffered metrics are
    drained into it first, so every scrape is up to date."""

    def __init__(self) -> None:
        super().__init__()
        self.before_collect: list[Callable[[], None]] = []

    def collect(self) -> Iterator[Metric]:
        for hook in self.before_collect:
            hook()
        yield from super().collect()


class Metrics:
    """The process's metrics. Counting methods never raise on odd label values."""

    def __init__(self, *, per_trigger: bool = False) -> None:
        self.per_trigger = per_trigger
        self.registry = _Registry()
        self._provider = _Bounded(MAX_LABEL_VALUES)
        self._trigger = _Bounded(MAX_TRIGGER_VALUES)
        self._code = _Bounded(MAX_LABEL_VALUES)
        t = [names.TRIGGER] if per_trigger else []
        p = [names.PROVIDER, *t]
        reg = self.registry
        self.events_received = Counter(
            names.EVENTS_RECEIVED,
            "Events accepted at intake (webhook route, source loop), repeats included",
            p,
            registry=reg,
        )
        self.events_filtered = Counter(
            names.EVENTS_FILTERED,
            "Condition outcomes (passed, dropped, error), once per event the trigger "
            "workflow takes in (counted in the workflow)",
            [names.PROVIDER, names.RESULT, *t],
            registry=reg,
        )
        self.runs_started = Counter(
            names.RUNS_STARTED,
            "Runs actually started, duplicates not included (counted in the workflow)",
            p,
            registry=reg,
        )
        self.latency = Histogram(
            names.LATENCY,
            "Seconds from the event's time (the source's own, else its receipt) to its "
            "run's start (measured in the workflow)",
            p,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.duplicates = Counter(
            names.DUPLICATES,
            "Repeated events dropped, by where: api (answered by the API), recent (the "
            "trigger workflow's recent keys), run_id (the run already existed)",
            [names.PROVIDER, names.STAGE, *t],
            registry=reg,
        )
        self.start_failures = Counter(
            names.START_FAILURES,
            "Run starts that failed for another reason than a duplicate (see the status's "
            "start_failures)",
            p,
            registry=reg,
        )
        self.webhook_responses = Counter(
            names.WEBHOOK_RESPONSES,
            "Answers of the webhook route, by HTTP status code",
            ["code"],
            registry=reg,
        )
        self.source_loops = Gauge(
            names.SOURCE_LOOPS,
            "Source loops (activities) this worker runs now; parked ones are not",
            [names.PROVIDER],
            registry=reg,
        )
        self.source_reconnects = Counter(
            names.SOURCE_RECONNECTS,
            "Source loop attempts that start again after an error (reconnects)",
            p,
            registry=reg,
        )
        self.source_state = Gauge(
            names.SOURCE_STATE,
            "Triggers by provider and state (active, degraded, failed, finished, disabled), "
            "from the database at scrape time (API only; every API process reports the whole)",
            [names.PROVIDER, "state"],
            registry=reg,
        )
        self.dead_letters = Gauge(
            names.DEAD_LETTERS,
            "Dead letters not redriven, by provider, from the database at scrape time (API only)",
            [names.PROVIDER],
            registry=reg,
        )
        self._forwarded: dict[str, MetricWrapperBase] = {
            names.EVENTS_FILTERED: self.events_filtered,
            names.RUNS_STARTED: self.runs_started,
            names.LATENCY: self.latency,
            names.DUPLICATES: self.duplicates,
            names.START_FAILURES: self.start_failures,
        }
        # triggers_source_health, _lag, _oldest_unaccepted_seconds (sources.py).
        self.sources = SourceGauges(self._provider)
        reg.register(self.sources)
        self._lock = threading.Lock()

    # -- counting ------------------------------------------------------------------------

    def _labels(self, provider: object, trigger_id: object = "", **more: object) -> dict[str, str]:
        out = {names.PROVIDER: self._provider(provider)}
        out.update({k: str(v)[:MAX_LABEL_CHARS] for k, v in more.items()})
        if self.per_trigger:
            out[names.TRIGGER] = self._trigger(trigger_id)
        return out

    def received(self, provider: str, trigger_id: str, count: int = 1) -> None:
        if count > 0:
            self.events_received.labels(**self._labels(provider, trigger_id)).inc(count)

    def duplicate(self, provider: str, trigger_id: str, stage: str) -> None:
        self.duplicates.labels(**self._labels(provider, trigger_id, stage=stage)).inc()

    def webhook_response(self, code: int) -> None:
        self.webhook_responses.labels(code=self._code(code if 100 <= code <= 599 else OTHER)).inc()

    def reconnected(self, provider: str, trigger_id: str) -> None:
        self.source_reconnects.labels(**self._labels(provider, trigger_id)).inc()

    @contextmanager
    def source_loop(self, provider: str, trigger_id: str = "") -> Iterator[None]:
        """Counts a source loop in ``triggers_source_loops`` while the block runs, and (with
        its trigger id) in ``triggers_source_health``: connected, failing once the block
        raised an error; gone when it ends otherwise (a cancel included)."""
        gauge = self.source_loops.labels(provider=self._provider(provider))
        gauge.inc()
        if trigger_id:
            self.sources.set(trigger_id, provider, CONNECTED)
        failed = False
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            gauge.dec()
            if trigger_id:
                self.sources.ended(trigger_id, failed=failed)

    def stream_observer(
        self, provider: str, trigger_id: str
    ) -> Callable[[str, StreamHealth], None]:
        """What a stream runtime tells as its state (``connected``, ``paused``) or its
        broker's figures change: into ``triggers_source_health`` and the lag gauges."""

        def observe(state: str, health: StreamHealth) -> None:
            self.sources.set(
                trigger_id, provider, state, lag=health.lag, oldest_age=health.oldest_age_seconds
            )

        return observe

    def set_states(
        self, states: Iterable[tuple[str, str, int]], dead: Iterable[tuple[str, int]]
    ) -> None:
        """The database's figures: ``(provider, state, triggers)`` and ``(provider, dead
        letters)``; series absent from them are removed."""
        with self._lock:
            self.source_state.clear()
            for provider, state, count in states:
                self.source_state.labels(provider=self._provider(provider), state=state).inc(count)
            self.dead_letters.clear()
            for provider, count in dead:
                self.dead_letters.labels(provider=self._provider(provider)).inc(count)

    def forward(self, name: str, value: float, attributes: Mapping[str, object]) -> bool:
        """An update the trigger workflow recorded (a counter's delta or a histogram's
        value), under the labels this registry defines for it; False for other names."""
        metric = self._forwarded.get(name)
        if metric is None:
            return False
        wanted = {
            k: attributes.get(k, "")
            for k in metric._labelnames  # noqa: SLF001  (the wrapper's declared labels)
            if k not in (names.PROVIDER, names.TRIGGER)
        }
        provider = attributes.get(names.PROVIDER, "")
        child = metric.labels(**self._labels(provider, attributes.get(names.TRIGGER, ""), **wanted))
        if isinstance(child, Histogram):
            child.observe(float(value))
        elif isinstance(child, Counter):
            child.inc(value)
        return True

    # -- export --------------------------------------------------------------------------

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        """The Prometheus text format (0.0.4) of everything this process has."""
        return generate_latest(self.registry)
