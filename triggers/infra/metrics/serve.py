"""The worker's metrics port: ``GET /metrics`` in the Prometheus text format.

``prometheus_client``'s own small HTTP server, on a thread: a scrape never waits for the
worker's event loop, and a busy event loop never delays a scrape. Off unless
``TRIGGERS_WORKER_METRICS_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import start_http_server

from triggers.infra.metrics.registry import Metrics
from triggers.infra.settings import Settings

log = logging.getLogger("triggers.metrics")


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


@contextlib.asynccontextmanager
async def worker_port(metrics: Metrics, settings: Settings) -> AsyncIterator[str | None]:
    """The worker's metrics port when ``TRIGGERS_WORKER_METRICS_PORT`` is set (its URL),
    else nothing (None). A port that cannot be opened ends the command at start, saying
    so: a worker Prometheus cannot scrape is a silent gap in the figures."""
    if not settings.worker_metrics_port:
        yield None
        return
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    async with contextlib.AsyncExitStack() as stack:
        try:
            bound = await stack.enter_async_context(serving(metrics, host=host, port=port))
        except OSError as exc:
            raise SystemExit(
                f"the worker's metrics port {host}:{port} cannot be opened "
                f"({exc.strerror or exc}); set TRIGGERS_WORKER_METRICS_PORT to a free port, "
                "or 0 for none"
            ) from None
        url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/metrics"
        log.info("worker metrics at %s", url)
        yield url
