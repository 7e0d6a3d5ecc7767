"""What the provider conformance suite (``tests/conformance.py``) runs its cases on: the
instrumented provider (counts of inits, shutdowns, receives and acks), the workers and the
stack (``Rig``), and small readers of what Temporal shows. Not a test module."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import Client

from tests.conftest import Stack
from tests.helpers import dead_letter_count
from triggers.core.events import trigger_workflow_id
from triggers.infra.settings import Settings
from triggers.providers import ProviderInfo, register
from triggers.providers.base import SourceContext, SourceProvider
from triggers.providers.stream import Message, StreamProvider
from workers.main import TriggersWorker, build_worker


@dataclass
class Probe:
    """What one trigger's provider instances did (all of them, across reconnects)."""

    inits: int = 0
    shutdowns: int = 0
    receiving: bool = False
    receive_ended_at: float = 0.0
    outstanding: int = 0
    max_outstanding: int = 0
    asked: int = 0
    acked: list[str] = field(default_factory=list)
    nacked: int = 0
    # Called after each ack with the keys it acked (a test's hook).
    on_ack: Callable[[list[str]], Awaitable[None]] | None = None


PROBES: dict[str, Probe] = {}


def probe(trigger_id: str) -> Probe:
    return PROBES.setdefault(trigger_id, Probe())


def instrumented(cls: type[SourceProvider]) -> str:
    """Register ``cls`` wrapped in counters as ``<name>_conformance``; its name."""
    name = f"{cls.name}_conformance"

    class Counted(cls):  # type: ignore[valid-type,misc]
        async def init(
            self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
        ) -> None:
            self._probe = probe(context.trigger_id)
            self._probe.inits += 1
            await super().init(config, secrets, context)

        async def shutdown(self) -> None:
            self._probe.shutdowns += 1
            await super().shutdown()

    if issubclass(cls, StreamProvider):

        class CountedStream(Counted):  # type: ignore[valid-type,misc]
            async def receive(self, max_messages: int) -> Sequence[Message]:
                p = self._probe
                p.asked = max(p.asked, max_messages)
                p.receiving = True
                try:
                    got: Sequence[Message] = await super().receive(max_messages)
                finally:
                    p.receiving = False
                    p.receive_ended_at = time.monotonic()
                p.outstanding += len(got)
                p.max_outstanding = max(p.max_outstanding, p.outstanding)
                return got

            async def ack(self, messages: Sequence[Message]) -> None:
                await super().ack(messages)
                p = self._probe
                p.outstanding -= len(messages)
                keys = [m.key for m in messages]
                p.acked.extend(keys)
                if p.on_ack is not None:
                    await p.on_ack(keys)

            async def nack(self, messages: Sequence[Message]) -> None:
                await super().nack(messages)
                self._probe.outstanding -= len(messages)
                self._probe.nacked += len(messages)

        Counted = CountedStream  # type: ignore[misc]
    Counted.name = name
    Counted.__name__ = Counted.__qualname__ = f"{cls.__name__}Conformance"
    register(ProviderInfo.of(Counted))
    return name


class Workers:
    """The rig's worker, which a test may stop (a worker shutdown) and start again; or two
    that split the queue (workflows on one, activities on the other)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client, self._settings = client, settings
        self._running: dict[str, tuple[TriggersWorker, asyncio.Task[None]]] = {}

    async def start(self, *parts: Literal["all", "workflows", "activities"]) -> None:
        for part in parts or ("all",):
            client = self._client
            if part == "activities":
                # The SDK allows one worker per task type and queue on one client.
                client = await Client.connect(client.service_client.config.target_host)
            worker = build_worker(client, self._settings, part=part)
            self._running[part] = (worker, asyncio.create_task(worker.run()))

    async def stop(self, *parts: str) -> None:
        for part in parts or list(self._running):
            worker, task = self._running.pop(part)
            await worker.shutdown()
            await task


@dataclass
class Rig:
    stack: Stack
    workers: Workers
    db_url: str

    async def dead_letters(self, trigger_id: str) -> int:
        return await dead_letter_count(self.db_url, trigger_id)


def run_keys(trigger_id: str, run_ids: list[str]) -> set[str]:
    prefix = f"run:{trigger_id}:"
    return {r[len(prefix) :] for r in run_ids}


async def source_beat(client: Client, trigger_id: str) -> dict[str, Any]:
    """The running source activity's last heartbeat details ({} without one)."""
    desc = await client.get_workflow_handle(trigger_workflow_id(trigger_id)).describe()
    for pending in desc.raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            values = await client.data_converter.decode(pending.heartbeat_details.payloads)
            if values and isinstance(values[0], dict):
                return values[0]
    return {}
