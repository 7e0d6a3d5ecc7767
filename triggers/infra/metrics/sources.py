"""The health of the source loops a worker runs, as gauges per provider (README "Metrics"):

- ``triggers_source_health{provider,state}``: loops by state, ``connected`` (running),
  ``paused`` (a stream paused by backpressure), ``failing`` (its last attempt here ended in
  an error: kept until that trigger's next attempt here, at most ``FAILING_KEPT_SECONDS``,
  past the longest backoff);
- ``triggers_source_lag{provider}``: the sum of the broker lag of the streams that tell it;
- ``triggers_source_oldest_unaccepted_seconds{provider}``: the oldest message a stream's
  broker holds that is not accepted yet (the largest), where the provider tells it.

A loop that ends normally (parked, its lifetime over, cancelled, finished) leaves the
gauges. Computed at scrape time from one small table per process (a row per loop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from triggers.contracts import metrics as names

CONNECTED = "connected"
PAUSED = "paused"
FAILING = "failing"
SOURCE_STATES = (CONNECTED, PAUSED, FAILING)
# Twice the source loop's longest backoff (workflows/source_loop.py): a failing source
# that is retried starts its next attempt within it.
FAILING_KEPT_SECONDS = 600.0


@dataclass
class _Loop:
    provider: str
    state: str
    lag: int | None = None
    oldest_age: float | None = None
    at: float = 0.0


class SourceGauges(Collector):
    """The table of this process's source loops and its three gauges."""

    def __init__(self, label: Callable[[object], str]) -> None:
        self._label = label
        self._loops: dict[str, _Loop] = {}
        self._lock = threading.Lock()

    def set(
        self,
        trigger_id: str,
        provider: str,
        state: str,
        *,
        lag: int | None = None,
        oldest_age: float | None = None,
    ) -> None:
        with self._lock:
            self._loops[trigger_id] = _Loop(
                self._label(provider), state, lag, oldest_age, time.monotonic()
            )

    def ended(self, trigger_id: str, *, failed: bool) -> None:
        with self._lock:
            loop = self._loops.get(trigger_id)
            if loop is None:
                return
            if failed:
                self._loops[trigger_id] = _Loop(loop.provider, FAILING, at=time.monotonic())
            else:
                del self._loops[trigger_id]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        with self._lock:
            for tid, loop in list(self._loops.items()):
                if loop.state == FAILING and now - loop.at > FAILING_KEPT_SECONDS:
                    del self._loops[tid]
            loops = list(self._loops.values())
        states = GaugeMetricFamily(
            names.SOURCE_HEALTH,
            "Source loops of this worker by provider and state: connected, paused (a stream "
            "paused by backpressure), failing (its last attempt here ended in an error)",
            labels=[names.PROVIDER, "state"],
        )
        lag = GaugeMetricFamily(
            names.SOURCE_LAG,
            "Messages the brokers hold behind this worker's streams, where the broker tells",
            labels=[names.PROVIDER],
        )
        oldest = GaugeMetricFamily(
            names.SOURCE_OLDEST_UNACCEPTED,
            "Age of the oldest message a stream's broker holds that is not accepted yet "
            "(the largest), where the provider tells",
            labels=[names.PROVIDER],
        )
        counts: dict[tuple[str, str], int] = {}
        lags: dict[str, int] = {}
        ages: dict[str, float] = {}
        for loop in loops:
            counts[(loop.provider, loop.state)] = counts.get((loop.provider, loop.state), 0) + 1
            if loop.lag is not None:
                lags[loop.provider] = lags.get(loop.provider, 0) + loop.lag
            if loop.oldest_age is not None:
                ages[loop.provider] = max(ages.get(loop.provider, 0.0), loop.oldest_age)
        for (provider, state), count in sorted(counts.items()):
            states.add_metric([provider, state], count)
        for provider, value in sorted(lags.items()):
            lag.add_metric([provider], value)
        for provider, age in sorted(ages.items()):
            oldest.add_metric([provider], age)
        yield from (states, lag, oldest)
