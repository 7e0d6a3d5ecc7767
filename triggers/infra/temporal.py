"""The Temporal client, built from settings in one place, and what the namespace must have."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import Runtime

from triggers.contracts.names import SEARCH_ATTRIBUTES
from triggers.infra import tracing
from triggers.infra.settings import Settings


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal. ``lazy`` defers the connection to the first call, so the API can
    start (and answer 503) while Temporal is down. ``runtime`` is where the client's (and
    its workers') SDK metrics go (``triggers.infra.metrics.Telemetry``); None: the default.
    With tracing on, the client carries the SDK's OpenTelemetry plugin (workers built on it
    get it from there)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=settings.temporal_tls,
        lazy=lazy,
        runtime=runtime,
        plugins=tracing.temporal_plugins(),
    )


async def missing_search_attributes(client: Client, *, timeout: float) -> list[str]:
    """The names in ``SEARCH_ATTRIBUTES`` (``triggers.contracts.names``) the client's
    namespace lacks, sorted.

    Raises:
        temporalio.service.RPCError: Temporal refused or failed the call.
        TimeoutError: no answer within ``timeout`` seconds.
    """
    request = ListSearchAttributesRequest(namespace=client.namespace)
    response = await asyncio.wait_for(
        client.operator_service.list_search_attributes(request, timeout=timedelta(seconds=timeout)),
        timeout,
    )
    return sorted(set(SEARCH_ATTRIBUTES) - set(response.custom_attributes))


def register_command(namespace: str, names: list[str]) -> str:
    """The ``temporal`` CLI command that registers ``names`` on ``namespace``. Each name
    needs its own ``--type``: the CLI gives a lone ``--type`` to the first name only."""
    flags = " ".join(f"--name {name} --type {SEARCH_ATTRIBUTES[name]}" for name in names)
    return f"temporal operator search-attribute create --namespace {namespace} {flags}"


@dataclass
class SearchAttributesMissing(Exception):
    """The namespace lacks search attributes that every trigger workflow and run sets."""

    namespace: str
    names: list[str]

    def __str__(self) -> str:
        return (
            f"the Temporal namespace {self.namespace!r} has no search attribute"
            f"{'s' if len(self.names) > 1 else ''} {', '.join(self.names)}; register "
            f"{'them' if len(self.names) > 1 else 'it'} once with `"
            f"{register_command(self.namespace, self.names)}` (`triggers dev` registers "
            "them on its own server)"
        )
