"""Redis stream entries as messages and events, without I/O: the consumer name, how an
entry's fields become ``Message.value`` and then the event, and what a redis-py error
means for the runtime. Used by ``triggers.providers.redis_streams``.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    ResponseError,
)

from triggers.core.events import Event
from triggers.providers.base import ProviderConfigError, ProviderError, ProviderTransientError
from triggers.providers.redis_streams_config import RedisStreamsConfig
from triggers.providers.stream import Message, PoisonMessage

EVENT_TYPE = "redis.stream.entry"
_MAX_CONSUMER_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")
# Replies that retrying cannot change: a key of another type, an ACL refusal, a server
# without the stream commands.
_PERMANENT = ("WRONGTYPE", "NOPERM")


def consumer_name(trigger_id: str) -> str:
    """``<hostname>:<pid>:<trigger id>``: unique per worker process, and the same again
    when the runtime reconnects inside that process."""
    name = f"{socket.gethostname()}:{os.getpid()}:{trigger_id}"
    return _UNSAFE.sub("_", name)[:_MAX_CONSUMER_CHARS]


def text(value: bytes | str) -> str:
    """A name or id from a reply (bytes); bytes that are not UTF-8 kept as surrogates."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def encode_entry(fields: Mapping[Any, Any]) -> bytes:
    """An entry's fields as a JSON object; bytes that are not UTF-8 survive as lone
    surrogates (``"\\udcff"``), so ``to_event`` can tell them and recover them."""
    pairs = {text(k): text(v) for k, v in fields.items()}
    return json.dumps(pairs, separators=(",", ":")).encode("ascii")


def entry_time(entry_id: str) -> datetime | None:
    """When the entry was added: the milliseconds part of its id."""
    millis, _, _ = entry_id.partition("-")
    if not millis.isdigit():
        return None
    return datetime.fromtimestamp(int(millis) / 1000, UTC)


def id_order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def entry_event(config: RedisStreamsConfig, source: str, message: Message) -> Event:
    """The event of a message made by ``encode_entry``.

    Raises:
        PoisonMessage: the entry was deleted while pending, has no ``value_field``, or
            the value is not what ``value_format`` says.
    """
    key = message.key
    stream, _, entry_id = key.rpartition("/")
    if not message.value:
        raise PoisonMessage(
            f"entry {key} was deleted from the stream (XDEL or XTRIM) while pending"
        )
    try:
        fields = json.loads(message.value)
    except ValueError:
        raise PoisonMessage(f"entry {key} is not an entry's JSON") from None
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise PoisonMessage(f"entry {key} is not an entry's JSON")
    content_type = "application/json"
    if config.value_format == "entry":
        if bad := [name for name, value in fields.items() if not _is_utf8(name + value)]:
            raise PoisonMessage(
                f"entry {key}: field {bad[0][:64]!r} is not UTF-8 text "
                "(value_format 'text' or 'json' with value_field decodes one field)"
            )
        data: Any = fields
    else:
        data = _decode_field(config, key, fields)
        if config.value_format == "text":
            content_type = "text/plain"
    time = message.time or entry_time(entry_id)
    if time is None:
        raise PoisonMessage(f"{key} is not <stream>/<entry-id>")
    return Event(
        id=key,
        key=key,
        source=source,
        type=EVENT_TYPE,
        time=time.isoformat(),
        subject=stream,
        data=data,
        datacontenttype=content_type,
    )


def _decode_field(config: RedisStreamsConfig, key: str, fields: Mapping[str, str]) -> Any:
    name = config.value_field or ""
    if name not in fields:
        raise PoisonMessage(f"entry {key} has no field {name!r}")
    raw = fields[name].encode("utf-8", "surrogateescape")
    try:
        decoded = raw.decode("utf-8")
        return json.loads(decoded) if config.value_format == "json" else decoded
    except ValueError as exc:
        what = "JSON" if config.value_format == "json" else "UTF-8 text"
        raise PoisonMessage(f"entry {key}: field {name!r} is not {what}: {exc}") from None


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def classify(exc: BaseException, where: str, password: str | None) -> ProviderError:
    """A secret-free error for the runtime: configuration (retrying cannot help) or
    transient. Raise it ``from None``: the driver's error must not ride along."""
    detail = (str(exc) or type(exc).__name__).splitlines()[0][:300]
    if password:
        detail = detail.replace(password, "***")
    if isinstance(exc, AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return ProviderConfigError(
            f"{where}: authentication refused ({detail}); check the 'password' secret "
            "and the URL's user"
        )
    if isinstance(exc, NoPermissionError) or (
        isinstance(exc, ResponseError)
        and (detail.startswith(_PERMANENT) or "unknown command" in detail.lower())
    ):
        return ProviderConfigError(f"{where}: {detail}")
    if isinstance(exc, ResponseError) and detail.startswith("NOGROUP"):
        detail += " (the stream or its group was deleted; reconnecting creates it again)"
    return ProviderTransientError(f"{where}: {detail}")
