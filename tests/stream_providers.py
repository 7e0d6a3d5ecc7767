"""A push-stream provider for dead-letter tests: its messages are JSON objects; anything else
(and, when the config says so, an object without the ``require``d field) is poison.
Registered in-process on import."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from triggers.core.events import Event
from triggers.providers import ProviderInfo, register
from triggers.providers.base import EventSink, SourceContext
from triggers.providers.stream import Message, PoisonMessage, StreamProvider


class JsonStreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A field every message must have; None: any JSON object will do.
    require: str | None = None


class JsonStream(StreamProvider):
    """Receives nothing (no broker): the tests write its dead letters with ``record``."""

    name = "test_json_stream"
    Config = JsonStreamConfig
    key_format = "<stream>/<n>"

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        self.configure(config, context)

    async def run(self, sink: EventSink) -> None:
        # Until the stream runtime runs stream providers, the source loop calls this: idle.
        while True:
            await sink.wait(60)

    async def receive(self, max_messages: int) -> Sequence[Message]:
        await asyncio.Event().wait()
        return []

    def to_event(self, message: Message) -> Event:
        assert isinstance(self.config, JsonStreamConfig)
        try:
            data = json.loads(message.value)
        except ValueError as exc:
            raise PoisonMessage(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise PoisonMessage("not a JSON object")
        if self.config.require is not None and self.config.require not in data:
            raise PoisonMessage(f"no field {self.config.require!r}")
        when = message.time or datetime.now(UTC)
        return Event(
            id=message.key,
            key=message.key,
            source="test-json-stream",
            type=str(message.meta.get("type", "test.message")),
            time=when.isoformat(),
            data=data,
            headers=dict(message.headers),
        )

    async def ack(self, messages: Sequence[Message]) -> None:
        return None


register(ProviderInfo.of(JsonStream))
