"""The service's metrics: their definitions (``registry``), the Temporal SDK's metrics
forwarded into them (``sdk``), the worker's metrics port (``serve``) and the figures read
from the database at scrape time (``db_state``). README "Metrics" lists them all."""

from __future__ import annotations

from triggers.infra.metrics.registry import LATENCY_BUCKETS, Metrics
from triggers.infra.metrics.sdk import Telemetry

__all__ = ["LATENCY_BUCKETS", "Metrics", "Telemetry"]
