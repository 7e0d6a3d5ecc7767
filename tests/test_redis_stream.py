"""The Redis Streams provider runs the stream conformance suite (tests/conformance.py)
against the local Redis on 127.0.0.1:6379: one stream and one consumer group per case."""

from __future__ import annotations

from typing import Any

from tests.conformance import StreamConformance
from tests.stream_sides import LOCAL_REDIS, RedisSide
from triggers.providers.redis_streams import RedisStreamsProvider


class TestRedisStreamConformance(StreamConformance):
    provider = RedisStreamsProvider
    network_allowlist = ("127.0.0.1",)

    async def setup_source(self) -> None:
        self.side = await RedisSide.connect(LOCAL_REDIS)

    async def teardown_source(self) -> None:
        await self.side.close()

    async def config(self, **overrides: Any) -> dict[str, Any]:
        return self.side.config(**overrides)

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        # An ACL user the server does not know: the login is refused (a config error).
        url = LOCAL_REDIS.replace("redis://", "redis://nobody-conformance@")
        return self.side.config(url=url), {"password": secret}

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        await self.side.publish(payloads)

    async def publish_raw(self, raw: bytes) -> None:
        await self.side.publish_raw([raw])

    async def unacked(self) -> int:
        return await self.side.unacked()

    async def redeliver_acked(self) -> None:
        await self.side.redeliver_acked()
