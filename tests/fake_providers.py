"""Providers for runtime tests: simple, deterministic, registered in-process."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from triggers.core.events import Event
from triggers.providers import ProviderInfo, register
from triggers.providers.base import (
    EventSink,
    ProviderConfigError,
    ProviderTransientError,
    SourceContext,
    SourceProvider,
)


class ListConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[str]
    interval: float = 0.05
    invalid: bool = False
    fail_times: int = 0
    idle_seconds: float = 0.5
    overlap: str = "allow"


class ListProvider(SourceProvider):
    """Emits ``items`` in order, one per interval; the cursor is the next index."""

    name = "test_list"
    Config = ListConfig
    optional_secrets = frozenset({"token"})
    failures: ClassVar[dict[str, int]] = {}
    shutdowns: ClassVar[dict[str, int]] = {}
    seen_secrets: ClassVar[dict[str, Mapping[str, str]]] = {}

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        assert isinstance(config, ListConfig)
        self.config = config
        self.context = context
        ListProvider.seen_secrets[context.trigger_id] = dict(secrets)
        if config.invalid:
            raise ProviderConfigError("items source refused the configuration")
        done = ListProvider.failures.get(context.trigger_id, 0)
        if done < config.fail_times:
            ListProvider.failures[context.trigger_id] = done + 1
            raise ProviderTransientError(f"source unavailable ({done + 1})", retry_after=0.2)

    async def run(self, sink: EventSink) -> None:
        index = int(sink.cursor or 0)
        while True:
            if index < len(self.config.items):
                item = self.config.items[index]
                now = datetime.now(UTC).isoformat()
                event = Event(
                    id=item,
                    key=item,
                    source="test",
                    type="test.item",
                    time=now,
                    data={"item": item},
                )
                index += 1
                await sink.emit([event], cursor=index)
                await sink.wait(self.config.interval)
            else:
                await sink.wait(self.config.idle_seconds)

    async def shutdown(self) -> None:
        tid = self.context.trigger_id
        ListProvider.shutdowns[tid] = ListProvider.shutdowns.get(tid, 0) + 1


register(ProviderInfo.of(ListProvider))
