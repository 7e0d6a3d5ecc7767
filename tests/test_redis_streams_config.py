"""The Redis Streams config: every field bounded (accepted at its limit, refused at ten
times it), the URL's rules (no password in it, never echoed), the defaults derived from
the trigger; and the pure entry codec. No server needed."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from triggers.providers import get_provider
from triggers.providers.base import ProviderConfigError, ProviderTransientError
from triggers.providers.redis_streams import RedisStreamsProvider
from triggers.providers.redis_streams_config import (
    MAX_BLOCK_MS,
    MAX_COUNT,
    MAX_DELIVERIES,
    MAX_GROUP_CHARS,
    MAX_NAME_CHARS,
    MAX_STREAMS,
    MAX_URL_CHARS,
    RedisStreamsConfig,
)
from triggers.providers.redis_streams_entries import classify, consumer_name, encode_entry

BASE: dict[str, Any] = {"url": "redis://127.0.0.1:6379/0", "streams": ["orders"]}


def make(**fields: Any) -> RedisStreamsConfig:
    return RedisStreamsConfig.model_validate({**BASE, **fields})


def long_url(chars: int) -> str:
    start = "redis://"
    return start + "a" * (chars - len(start))


@pytest.mark.parametrize(
    ("field", "at_limit", "ten_times"),
    [
        ("streams", [f"s{i}" for i in range(MAX_STREAMS)], [f"s{i}" for i in range(160)]),
        ("streams", ["s" * MAX_NAME_CHARS], ["s" * MAX_NAME_CHARS * 10]),
        ("group", "g" * MAX_GROUP_CHARS, "g" * MAX_GROUP_CHARS * 10),
        ("url", long_url(MAX_URL_CHARS), long_url(MAX_URL_CHARS * 10)),
        ("block_ms", MAX_BLOCK_MS, MAX_BLOCK_MS * 10),
        ("count", MAX_COUNT, MAX_COUNT * 10),
        ("max_deliveries", MAX_DELIVERIES, MAX_DELIVERIES * 10),
        ("min_idle", "7d", "70d"),
        ("min_idle", "100ms", "10ms"),
        ("block_ms", 10, 1),
    ],
)
def test_every_field_is_bounded(field: str, at_limit: Any, ten_times: Any) -> None:
    make(**{field: at_limit})
    with pytest.raises(ValidationError):
        make(**{field: ten_times})


def test_value_field_is_bounded_and_goes_with_its_format() -> None:
    make(value_format="json", value_field="f" * MAX_NAME_CHARS)
    with pytest.raises(ValidationError):
        make(value_format="json", value_field="f" * MAX_NAME_CHARS * 10)
    with pytest.raises(ValidationError, match="needs value_field"):
        make(value_format="text")
    with pytest.raises(ValidationError, match="only used with"):
        make(value_field="payload")


def test_refuses_what_is_not_a_plain_redis_url() -> None:
    for url, message in [
        ("redis://:hunter2-secret@127.0.0.1:6379/0", "must not carry a password"),
        ("redis://user:hunter2-secret@127.0.0.1/0", "'password' secret"),
        ("http://127.0.0.1:6379", "must start with redis:// or rediss://"),
        ("unix:///tmp/redis.sock", "must start with"),
        ("redis://127.0.0.1:6379/0?socket_timeout=1", "no query"),
        ("redis://127.0.0.1:6379/1000", "database number"),
        ("redis://127.0.0.1:99999/0", "not a URL"),
        ("redis:///0", "names no host"),
    ]:
        with pytest.raises(ValidationError, match=message) as caught:
            make(url=url)
        assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError, match="listed twice"):
        make(streams=["a", "a"])
    with pytest.raises(ValidationError, match="at least 1"):
        make(streams=[])
    with pytest.raises(ValidationError, match="Extra inputs"):
        make(password="x")


def test_defaults_and_what_the_url_names() -> None:
    cfg = make(url="rediss://app@cache.example:6380/3", min_idle="90s")
    assert cfg.group_name("t-1") == "triggers:t-1"
    assert make(group="mine").group_name("t-1") == "mine"
    assert (cfg.start, cfg.value_format, cfg.block_ms, cfg.count) == ("$", "entry", 5000, 100)
    assert (cfg.max_deliveries, cfg.min_idle) == (5, timedelta(seconds=90))
    address = cfg.address
    assert (address.scheme, address.host, address.port, address.db) == (
        "rediss",
        "cache.example",
        6380,
        3,
    )
    assert address.display == "rediss://app@cache.example:6380/3"
    assert make(url="redis://[::1]").address.display == "redis://[::1]:6379/0"


def test_consumer_name_is_per_process_and_trigger() -> None:
    name = consumer_name("t-1")
    assert name.endswith(f":{os.getpid()}:t-1")
    assert consumer_name("t 2/x").endswith(":t_2_x")
    assert len(consumer_name("t" * 1000)) == 200


def test_entry_encoding_keeps_bytes_that_are_not_utf8() -> None:
    raw = encode_entry({b"a": b"\xff", b"b": "é".encode()})
    assert raw.isascii()
    assert raw == b'{"a":"\\udcff","b":"\\u00e9"}'


def test_errors_are_classified_and_masked() -> None:
    where = "redis_streams redis://h:6379/0"
    auth = classify(AuthenticationError("invalid username-password pair s3cr3t"), where, "s3cr3t")
    assert isinstance(auth, ProviderConfigError)
    assert "s3cr3t" not in str(auth) and "***" in str(auth)
    wrong_type = ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    assert isinstance(classify(wrong_type, where, None), ProviderConfigError)
    unknown = ResponseError("unknown command 'XAUTOCLAIM'")
    assert isinstance(classify(unknown, where, None), ProviderConfigError)
    for transient in (ConnectionError("Connection reset by peer"), ResponseError("NOGROUP x")):
        assert isinstance(classify(transient, where, None), ProviderTransientError)


def test_registered_with_url_as_destination() -> None:
    info = get_provider("redis_streams")
    assert info.source is RedisStreamsProvider
    assert info.optional_secrets == frozenset({"password"})
    cfg = RedisStreamsConfig(url=BASE["url"], streams=["a"])
    assert info.destinations(cfg) == {"url": BASE["url"]}
