"""The worker's metrics port: ``GET /metrics`` in the Prometheus text format.

``prometheus_client``'s own small HTTP server, on a thread: a scrape never waits for the
worker's event loop, and a busy event loop never delays a scrape. Off unless
``TRIGGERS_WORKER_METRICS_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import start_http_server

from triggers.infra.metrics.registry import Metrics


@contextlib.asynccontextmanager
async def serving(metrics: Metrics, *, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``metrics`` on ``host:port`` while the block runs; yields the bound port
    (``port`` 0 picks a free one). Raises ``OSError`` when the port is taken."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        await asyncio.to_thread(thread.join, 5)
