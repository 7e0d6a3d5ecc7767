"""The Kafka provider runs the stream conformance suite (tests/conformance.py) against a
real Kafka-protocol broker (Tansu, the session's ``kafka_broker``): one topic of two
partitions and one consumer group per case.

Unacked is "published minus the group's committed offsets", read as a consumer reads them:
Tansu's end offsets are wrong, so no lag from them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conformance import Rig, StreamConformance
from tests.kafka_broker import TansuBroker
from tests.stream_sides import KafkaSide
from triggers.providers.kafka import KafkaProvider


class TestKafkaStreamConformance(StreamConformance):
    provider = KafkaProvider
    network_allowlist = ("127.0.0.1",)

    @pytest.fixture(autouse=True)
    async def brokers(
        self, kafka_broker: TansuBroker, kafka_auth_broker: TansuBroker
    ) -> AsyncIterator[None]:
        # Autouse: set before the rig's setup_source reads them.
        self.broker, self.auth_broker = kafka_broker, kafka_auth_broker
        yield

    async def setup_source(self) -> None:
        self.side = KafkaSide(self.broker.bootstrap)
        await self.side.start()

    async def teardown_source(self) -> None:
        await self.side.close()

    async def config(self, **overrides: Any) -> dict[str, Any]:
        return self.side.config(**overrides)

    async def bad_config(self, secret: str) -> tuple[dict[str, Any], dict[str, str]]:
        # A broker that wants SCRAM and has no users: the login is refused (a config error).
        config = self.side.config(
            bootstrap_servers=[self.auth_broker.bootstrap],
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="nobody",
        )
        return config, {"sasl_password": secret}

    async def create(self, rig: Rig, **overrides: Any) -> str:
        self.trigger_id = await super().create(rig, **overrides)
        return self.trigger_id

    async def publish(self, payloads: list[dict[str, Any]]) -> None:
        await self.side.publish(payloads)

    async def publish_raw(self, raw: bytes) -> None:
        await self.side.publish_raw([raw])

    async def unacked(self) -> int:
        return await self.side.unacked()

    async def redeliver_acked(self) -> None:
        """A new consumer group, from the earliest offset: the broker delivers every message
        again under its own key (``<topic>/<partition>/<offset>`` names no group). Resetting
        the old group's offsets instead needs the group empty, and Tansu keeps a stopped
        static member in it (an outside commit is refused with UNKNOWN_MEMBER_ID)."""
        s = self.rig.stack
        self.side.group = f"{self.side.group}-again"
        body = {"config": self.side.config()}
        r = await s.http.patch(f"/api/triggers/{self.trigger_id}", json=body, headers=s.alice)
        assert r.status_code == 200, r.text
