"""The event that flows from a provider to a run (CloudEvents 1.0 attributes)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

TRIGGER_WORKFLOW_PREFIX = "trigger:"
RUN_WORKFLOW_PREFIX = "run:"

# Event data whose compact JSON is larger than this (bytes) is stored in the database and
# the event carries a reference (claim check): see ``triggers/infra/payloads.py``.
CLAIM_CHECK_BYTES = 2 * 1024
# Event keys and ids longer than this become ``<prefix>~<sha256>`` (see ``bound_key``), so
# ``run:<trigger-id>:<key>`` always fits Temporal's 1,000-character id limit.
MAX_KEY_CHARS = 200
# Other event attributes (type, source, subject) are cut to this many characters.
MAX_ATTRIBUTE_CHARS = 200
# Headers kept on an event: at most this many, each value cut to MAX_HEADER_VALUE_CHARS,
# at most MAX_HEADERS_BYTES in all (the rest are dropped, in the order given).
MAX_HEADERS = 32
MAX_HEADER_VALUE_CHARS = 1024
MAX_HEADERS_BYTES = 4 * 1024
# A W3C ``traceparent`` of version 00: 55 characters, lowercase hex, ids not all zeros.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass
class Event:
    """One event accepted from a source.

    ``key`` is the deduplication key: the provider's native delivery id, or a sha256
    fingerprint of the raw payload where the source has none.
    """

    id: str
    key: str
    source: str
    type: str
    time: str
    data: Any = None
    subject: str | None = None
    datacontenttype: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    specversion: str = "1.0"
    # Claim check: set when ``data`` (then None) is stored in the database under this ref.
    data_ref: str | None = None
    # The intake's decision (condition, input mapping), made where the event entered.
    verdict: Verdict | None = None
    # Trace context (README "Tracing"): the W3C ``traceparent`` of the span the event
    # entered under (its webhook request, or a source's batch span), so that its handling
    # and its run, however much later, belong to it. Only a valid traceparent is kept.
    traceparent: str | None = None
    # True when that span is a source's batch span, shared by the batch's events: the
    # event's handling then starts a trace of its own that links to the batch's.
    trace_link: bool = False


@dataclass
class Verdict:
    """What the trigger's condition and its target's input mapping made of one event,
    decided where the event entered (the webhook route, the source activity) so that the
    trigger workflow's task never evaluates an expression.

    ``result``: ``passed`` (start a run), ``dropped`` (the condition was false) or
    ``error`` (it failed or ran over its budget; the event is dropped, ``error`` says why).
    ``counted``: whether the outcome counts in the trigger's condition outcomes (false when
    the trigger has no condition and nothing failed). ``mapped``: the run's input is
    ``input`` (or, when large, the payload ``input_ref``) instead of the whole event.
    """

    result: str
    error: str | None = None
    counted: bool = True
    mapped: bool = False
    input: Any = None
    input_ref: str | None = None
    # The trigger's config version the decision was made under.
    config_version: int = 0


def signal_size(event: Event) -> int:
    """About the bytes an event adds to the signal carrying it (large data is a reference
    by then): what batching signals by size counts."""
    data = 0 if event.data_ref else len(repr(event.data))
    return 512 + data + sum(len(k) + len(v) for k, v in event.headers.items())


def trigger_workflow_id(trigger_id: str) -> str:
    return f"{TRIGGER_WORKFLOW_PREFIX}{trigger_id}"


def run_workflow_id(trigger_id: str, event_key: str) -> str:
    return f"{RUN_WORKFLOW_PREFIX}{trigger_id}:{event_key}"


def bound_key(key: str, limit: int = MAX_KEY_CHARS) -> str:
    """A key (or id) as it is used in run IDs: unchanged when it is at most ``limit``
    printable characters, else ``<first 64 printable characters>~<sha256 hex>`` of the
    whole key. Stable: the same long key always gives the same bounded key."""
    if len(key) <= limit and key.isprintable() and _encodable(key):
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    prefix = "".join(c for c in key[:64] if c.isprintable() and _encodable(c))
    return f"{prefix}~{digest}"


def bound_event(event: Event) -> Event:
    """The event with every attribute within its bound (keys and ids hashed when long,
    other text cut, headers limited), where it enters: a delivery can never make a run id,
    a memo or a history event exceed what Temporal accepts."""
    return replace(
        event,
        id=bound_key(event.id),
        key=bound_key(event.key),
        source=_cut(event.source, MAX_ATTRIBUTE_CHARS),
        type=_cut(event.type, MAX_ATTRIBUTE_CHARS),
        subject=None if event.subject is None else _cut(event.subject, MAX_ATTRIBUTE_CHARS),
        datacontenttype=_cut(event.datacontenttype, MAX_ATTRIBUTE_CHARS),
        time=_cut(event.time, 64),
        headers=bound_headers(event.headers),
        traceparent=valid_traceparent(event.traceparent),
    )


def valid_traceparent(text: str | None) -> str | None:
    """``text`` when it is a valid W3C ``traceparent`` (version 00, 55 characters), else
    None: trace context that came from elsewhere is kept only in that bounded form."""
    if text is None or len(text) != 55 or not _TRACEPARENT.fullmatch(text):
        return None
    return text


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a valid ``traceparent``, for log records."""
    valid = valid_traceparent(traceparent)
    return valid[3:35] if valid else None


def bound_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """At most ``MAX_HEADERS`` headers, names cut to ``MAX_ATTRIBUTE_CHARS`` and values to
    ``MAX_HEADER_VALUE_CHARS``, at most ``MAX_HEADERS_BYTES`` in all: the rest are dropped,
    in the order given."""
    out: dict[str, str] = {}
    total = 0
    for name, value in headers.items():
        name, value = _cut(name, MAX_ATTRIBUTE_CHARS), _cut(value, MAX_HEADER_VALUE_CHARS)
        total += len(name) + len(value)
        if len(out) >= MAX_HEADERS or total > MAX_HEADERS_BYTES:
            break
        out[name] = value
    return out


def _cut(text: str, limit: int) -> str:
    text = text[:limit]
    return text if _encodable(text) else text.encode("utf-8", "replace").decode("utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def log_fields(
    trigger_id: str, provider: str, event: Event, *, run_id: str | None = None
) -> dict[str, str]:
    """The fields of a log record about ``event`` (README "Logs"): ids only, never data or
    header values. ``run_workflow_id`` is the run the event starts (or would start)."""
    fields = {
        "trigger_id": trigger_id,
        "provider": provider,
        "event_id": event.id,
        "event_key": event.key,
        "run_workflow_id": run_id or run_workflow_id(trigger_id, event.key),
    }
    trace_id = trace_id_of(event.traceparent)
    if trace_id:
        fields["trace_id"] = trace_id
    return fields
