"""A third-party provider: emits each configured message once (cursor: how many so far)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from triggers.core.events import Event
from triggers.providers.base import EventSink, SourceContext, SourceProvider


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[str]


class EchoProvider(SourceProvider):
    name = "echo"
    Config = EchoConfig

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        assert isinstance(config, EchoConfig)
        self.messages = config.messages
        self.trigger_id = context.trigger_id

    async def run(self, sink: EventSink) -> None:
        done = int(sink.cursor or 0)
        for i, message in enumerate(self.messages[done:], start=done):
            event = Event(
                id=f"echo-{i}",
                key=f"echo-{i}",
                source=f"/triggers/{self.trigger_id}/echo",
                type="echo.message",
                time=datetime.now(UTC).isoformat(),
                data={"message": message},
            )
            await sink.emit([event], cursor=i + 1)
        while True:
            await sink.wait(30)
