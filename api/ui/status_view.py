"""A trigger's runtime status as the page shows it: every field of ``TriggerStatus``, the
health fields first, the rest in the dataclass's order, so a field added to the status
shows up with no UI code. Scalars as text, lists and objects as JSON."""

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


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    text: str
    structured: bool


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


def rows(status: TriggerStatus) -> list[Row]:
    values = dataclasses.asdict(status)
    names = [n for n in FIRST if n in values]
    names += [n for n in values if n not in names and n not in HIDDEN]
    out = []
    for name in names:
        text, structured = _text(values[name])
        out.append(Row(name=name, label=_label(name), text=text, structured=structured))
    return out


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
