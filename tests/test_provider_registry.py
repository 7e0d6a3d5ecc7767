"""What the API and the trigger workflow do with a provider follows from what it declares:
a source loop, webhook deliveries, an overlap policy; never from its name or from guessing
at its config's field names."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.control import spec_of
from tests.fake_providers import ListProvider
from triggers import providers
from triggers.infra.models import Trigger
from triggers.providers import ProviderInfo, find_provider, get_provider
from triggers.providers.cron import CronProvider
from triggers.providers.http_poll import HttpPollProvider
from triggers.providers.kafka import KafkaProvider
from triggers.providers.redis_streams import RedisStreamsProvider
from triggers.providers.sql_poll import SqlPollProvider


def test_builtins_are_registered_in_one_place_and_declare_what_they_do() -> None:
    assert providers.BUILTINS == tuple(
        f"triggers.providers.{n}"
        for n in ("webhook", "cron", "http_poll", "sql_poll", "kafka", "redis_streams")
    )
    declared = {
        name: (info.runs_source, info.receives_webhooks, info.overlap_field, info.source)
        for name in ("webhook", "cron", "http_poll", "sql_poll", "kafka", "redis_streams")
        for info in [get_provider(name)]
    }
    assert declared == {
        "webhook": (False, True, None, None),
        "cron": (True, False, "overlap", CronProvider),
        "http_poll": (True, False, None, HttpPollProvider),
        "sql_poll": (True, False, None, SqlPollProvider),
        "kafka": (True, False, None, KafkaProvider),
        "redis_streams": (True, False, None, RedisStreamsProvider),
    }
    assert find_provider("no-such-provider") is None


def _row(provider: str, config: dict[str, Any]) -> Trigger:
    return Trigger(
        id=uuid.uuid4(), user_id=uuid.uuid4(), name="t", provider=provider, config=config
    )


@pytest.mark.parametrize(
    ("provider", "config", "source", "overlap"),
    [
        ("cron", {"every": "1m", "overlap": "skip"}, True, "skip"),
        ("cron", {"every": "1m"}, True, "allow"),
        ("test_list", {"items": [], "overlap": "skip"}, True, "skip"),
        # A config field that happens to be called "overlap" is not a policy unless declared.
        ("http_poll", {"url": "https://example.com", "overlap": "skip"}, True, "allow"),
        ("webhook", {"preset": "github", "overlap": "skip"}, False, "allow"),
        # A plugin no longer installed: no source, nothing guarded.
        ("gone", {"overlap": "skip"}, False, "allow"),
    ],
)
def test_the_trigger_spec_follows_the_declared_capabilities(
    provider: str, config: dict[str, Any], source: bool, overlap: str
) -> None:
    spec = spec_of(_row(provider, config))
    assert (spec.source, spec.overlap) == (source, overlap)


def test_a_source_provider_declares_its_overlap_field() -> None:
    assert ProviderInfo.of(ListProvider).overlap_field == "overlap"

    class Plain(ListProvider):
        name = "plain"
        overlap_field = None

    info = ProviderInfo.of(Plain)
    assert info.runs_source and not info.receives_webhooks
    assert info.overlap_policy({"overlap": "skip"}) == "allow"
