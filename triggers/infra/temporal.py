"""The Temporal client, built from settings in one place."""

from __future__ import annotations

from temporalio.client import Client

from triggers.infra.settings import Settings


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """Connect to Temporal. ``lazy`` defers the connection to the first call, so the API can
    start (and answer 503) while Temporal is down."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=settings.temporal_tls,
        lazy=lazy,
    )
