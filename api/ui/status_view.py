"""A trigger's runtime status as the page shows it: every field of ``TriggerStatus``, the
health fields first, the rest in the dataclass's order, so a field added to the status
shows up with no UI code. Scalars as text; an object of scalars (the stream's health, or
any such object added later) as a group of its own fields, shown open; other lists and
objects as JSON. Values that need attention (a backpressure pause, held events, dead
letters, an error) are marked."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from triggers.contracts.trigger import TriggerStatus

# The health model, in the order a user reads it; every other field follows.
FIRST = (
    "status",
    "running",
    "last_error",
    "health",
    "stream",
    "held",
    "consecutive_errors",
    "next_retry_at",
    "next_at",
    "cursor",
    "events_received",
    "runs_started",
    "runs_in_flight",
    "duplicates",
    "filtered",
    "pending",
    "last_event_time",
)
# Shown elsewhere on the page.
HIDDEN = {"trigger_id", "workflow_id", "name"}
MAX_SHOWN_CHARS = 20_000


# Marked when their value is set (true, non-zero, not empty).
ATTENTION = {
    "last_error",
    "paused_by_backpressure",
    "held",
    "dead_letters",
    "consecutive_errors",
    "failed_starts",
}


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    text: str
    structured: bool
    attention: bool = False
    # An object of scalars: its fields, each a row.
    children: tuple[Row, ...] = ()


def _label(name: str) -> str:
    return name.replace("_", " ")


def _text(value: Any) -> tuple[str, bool]:
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, str | int | float):
        return str(value), False
    if not value:
        return "none", False
    text = json.dumps(value, indent=2, default=str, sort_keys=True)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS] + "\n…"
    return text, True


def _flat(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(v is None or isinstance(v, str | int | float | bool) for v in value.values())
    )


def _row(name: str, key: str, value: Any) -> Row:
    if _flat(value):
        children = tuple(_row(f"{name}.{k}", str(k), v) for k, v in value.items())
        return Row(
            name=name,
            label=_label(key),
            text="",
            structured=False,
            attention=any(c.attention for c in children),
            children=children,
        )
    text, structured = _text(value)
    attention = key in ATTENTION and bool(value) and not isinstance(value, dict | list)
    return Row(name=name, label=_label(key), text=text, structured=structured, attention=attention)


def rows(status: TriggerStatus) -> list[Row]:
    values = dataclasses.asdict(status)
    names = [n for n in FIRST if n in values]
    names += [n for n in values if n not in names and n not in HIDDEN]
    out = [_row(name, name, values[name]) for name in names]
    # Groups (the stream's health, …) first after the state: they are what to read.
    return out[:1] + [r for r in out[1:] if r.children] + [r for r in out[1:] if not r.children]


_SIGNING = {
    "github": "GitHub signs the body with HMAC-SHA256 of the secret: header "
    "X-Hub-Signature-256: sha256=<hex>; the delivery id is X-GitHub-Delivery. In the "
    "repository's Settings → Webhooks, paste the URL, content type application/json, and "
    "the signing secret.",
    "stripe": "Stripe signs t=<timestamp>,v1=<HMAC-SHA256 of '<t>.<body>'> in "
    "Stripe-Signature; use the endpoint's whsec_ secret.",
    "standard": "Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature "
    "(v1,<base64 HMAC of '<id>.<timestamp>.<body>'>); whsec_ secrets.",
    "svix": "Svix (Standard Webhooks): webhook-id, webhook-timestamp, webhook-signature; "
    "whsec_ secrets.",
    "pagerduty": "PagerDuty signs X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>.",
    "generic": "HMAC-SHA256 of the body (and the timestamp header, when set) in the "
    "configured signature header, hex or base64, with the configured prefix.",
    "apikey": "The secret itself in the configured header (default X-API-Key).",
}


def signing_help(config: dict[str, Any]) -> str | None:
    preset = config.get("preset")
    return _SIGNING.get(preset) if isinstance(preset, str) else None
