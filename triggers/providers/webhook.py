"""Webhook provider: sender presets, signature verification and event construction.

Framework-free: the API route feeds it headers and the raw body and maps its errors to HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triggers.core import signatures, vendor_signatures
from triggers.core.events import Event
from triggers.providers import ProviderInfo

SECRET = "signing_secret"
PREVIOUS_SECRET = "previous_signing_secret"

Preset = Literal["github", "stripe", "standard", "svix", "pagerduty", "generic", "apikey"]

# Headers that carry credentials or transport details never travel with the event.
_NEVER_FORWARD = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "webhook-signature",
    "svix-signature",
    "x-pagerduty-signature",
}
_FORWARD_PREFIXES = ("x-github-", "x-gitlab-", "x-event-", "x-webhook-", "x-pagerduty-")
_FORWARD = {
    "content-type",
    "user-agent",
    "x-request-id",
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "svix-timestamp",
}

# Headers a delivery may carry once: a second copy makes it ambiguous which signature,
# timestamp, id or body type was meant (a proxy may have checked one, we would read another).
_SINGLE = {
    "content-type",
    "content-encoding",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-github-delivery",
    "x-github-event",
    "stripe-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-pagerduty-signature",
    "x-webhook-id",
    "x-api-key",
}


class WebhookConfig(BaseModel):
    """Configuration of a webhook trigger. Secrets go in the trigger's ``secrets``:
    ``signing_secret`` and, during rotation, ``previous_signing_secret``."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset = Field(description="Sender: selects the signature scheme and the URL path.")
    signature_header: str | None = Field(
        default=None, description="generic: header with the HMAC; apikey: header with the key."
    )
    encoding: Literal["hex", "base64"] = Field(
        default="hex", description="generic: digest encoding."
    )
    prefix: str = Field(default="", description="generic: text before the digest, e.g. 'sha256='.")
    timestamp_header: str | None = Field(
        default=None, description="generic: header with a unix timestamp that is signed too."
    )
    id_header: str | None = Field(default=None, description="generic/apikey: delivery id header.")
    event_type_header: str | None = Field(default=None, description="generic/apikey: type header.")
    tolerance_seconds: int = Field(default=300, ge=1, le=86_400)
    max_body_bytes: int | None = Field(default=None, ge=1)
    replay_window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 3600,
        description=(
            "Off by default. Refuse (409) a delivery whose body (sha256 of the raw bytes) "
            "this trigger accepted under another delivery id within this many seconds: for "
            "schemes that sign neither a timestamp nor the delivery id (github)."
        ),
    )
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    forward_headers: list[str] = Field(
        default_factory=list, description="Extra request headers to keep on the event."
    )

    @model_validator(mode="after")
    def _check_preset_fields(self) -> WebhookConfig:
        if self.preset == "generic" and not self.signature_header:
            raise ValueError("signature_header is required for the generic preset")
        lowered = {h.lower() for h in self.forward_headers}
        if lowered & _NEVER_FORWARD:
            raise ValueError("forward_headers may not include credential headers")
        return self


class WebhookRejected(Exception):
    """A delivery the provider refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def active_secrets(secrets: Mapping[str, str]) -> list[str]:
    return [s for s in (secrets.get(SECRET), secrets.get(PREVIOUS_SECRET)) if s]


def single_headers(config: WebhookConfig) -> frozenset[str]:
    """Lower-case names of the headers a delivery for ``config`` may carry at most once."""
    configured = (
        config.signature_header,
        config.timestamp_header,
        config.id_header,
        config.event_type_header,
    )
    return frozenset(_SINGLE | {h.lower() for h in configured if h})


def verify(
    config: WebhookConfig,
    secrets: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
) -> signatures.Verified:
    """Check the delivery's signature; raises ``signatures.SignatureError``."""
    keys = active_secrets(secrets)
    tol = config.tolerance_seconds
    match config.preset:
        case "github":
            return vendor_signatures.verify_github(keys, headers, body)
        case "stripe":
            return vendor_signatures.verify_stripe(keys, headers, body, now=now, tolerance=tol)
        case "standard" | "svix":
            return vendor_signatures.verify_standard(keys, headers, body, now=now, tolerance=tol)
        case "pagerduty":
            return vendor_signatures.verify_pagerduty(keys, headers, body)
        case "generic":
            assert config.signature_header is not None
            return signatures.verify_hmac(
                keys,
                headers,
                body,
                header=config.signature_header.lower(),
                encoding=config.encoding,
                prefix=config.prefix,
                timestamp_header=(config.timestamp_header or "").lower() or None,
                now=now,
                tolerance=tol,
            )
        case "apikey":
            header = (config.signature_header or "x-api-key").lower()
            return signatures.verify_api_key(keys, headers, header=header)
    raise AssertionError(config.preset)


def parse_body(config: WebhookConfig, content_type: str, body: bytes) -> tuple[Any, str]:
    """Decode the body; returns (data, datacontenttype)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        form = {
            k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(body.decode("utf-8", "replace")).items()
        }
        if config.preset == "github" and isinstance(form.get("payload"), str):
            return _json(str(form["payload"])), "application/json"
        if config.preset in ("generic", "apikey"):
            return form, media
        raise WebhookRejected(415, f"{config.preset} deliveries must be application/json")
    if media == "application/json" or media.endswith("+json") or (not media and body[:1] in b"[{"):
        return _json(body), "application/json"
    if config.preset in ("generic", "apikey") and (media.startswith("text/") or not body):
        try:
            return body.decode("utf-8"), media or "text/plain"
        except UnicodeDecodeError:
            raise WebhookRejected(400, "body is not valid UTF-8 text") from None
    raise WebhookRejected(415, f"unsupported content type {media or '(none)'!r}")


# JSON nested deeper than this is refused (400): deeper data would overflow the recursion
# of every later step (conditions, storage, Temporal's converter).
MAX_JSON_DEPTH = 100


def _json(raw: bytes | str) -> Any:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc.args[0]}") from None
    except RecursionError:
        raise WebhookRejected(400, f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    if _too_deep(value):
        raise WebhookRejected(400, f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Whether containers nest deeper than MAX_JSON_DEPTH (iterative: no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _get(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def build_event(
    config: WebhookConfig,
    *,
    trigger_id: str,
    headers: Mapping[str, str],
    body: bytes,
    data: Any,
    datacontenttype: str,
    verified: signatures.Verified,
    received_at: datetime,
) -> Event:
    """Event key: the sender's delivery id where it has one, else a fingerprint of the body."""
    preset = config.preset
    key: str | None = verified.delivery_id
    subject: str | None = None
    if preset == "github":
        event_type = f"github.{headers.get('x-github-event', 'unknown')}"
        subject = _str_or_none(_get(data, "repository", "full_name"))
    elif preset == "stripe":
        key = _str_or_none(_get(data, "id"))
        event_type = f"stripe.{_get(data, 'type') or 'event'}"
        subject = _str_or_none(_get(data, "data", "object", "id"))
    elif preset in ("standard", "svix"):
        event_type = _str_or_none(_get(data, "type")) or "webhook"
    elif preset == "pagerduty":
        key = _str_or_none(_get(data, "event", "id")) or headers.get("x-webhook-id")
        event_type = f"pagerduty.{_get(data, 'event', 'event_type') or 'event'}"
        subject = _str_or_none(_get(data, "event", "data", "id"))
    else:
        if config.id_header:
            key = headers.get(config.id_header.lower())
        event_type = (
            headers.get(config.event_type_header.lower(), "") if config.event_type_header else ""
        ) or "webhook"
    if not key:
        key = signatures.fingerprint(body)
    sent_at = datetime.fromtimestamp(verified.timestamp, UTC) if verified.timestamp else received_at
    keep = _FORWARD | {h.lower() for h in config.forward_headers}
    kept = {
        k: v
        for k, v in headers.items()
        if k not in _NEVER_FORWARD
        and (k in keep or k.startswith(_FORWARD_PREFIXES))
        and k != (config.signature_header or "").lower()
    }
    return Event(
        id=key,
        key=key,
        source=url_path(config.preset, trigger_id),
        type=event_type,
        time=sent_at.isoformat(),
        data=data,
        subject=subject,
        datacontenttype=datacontenttype,
        headers=kept,
    )


def url_path(preset: str, trigger_id: str) -> str:
    """Where a webhook trigger receives its deliveries (the API's webhook route)."""
    return f"/webhooks/{preset}/{trigger_id}"


def stored_preset(config: Mapping[str, Any]) -> str:
    """The preset of a stored (validated) config."""
    return str(config.get("preset", "generic"))


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _no_destinations(_config: BaseModel) -> dict[str, Any]:
    # A webhook sends its secrets nowhere: they only check what senders send. Whatever the
    # config says, a delivery whose credential is not where the config looks for it fails
    # verification before any event (or forwarded header) exists.
    return {}


info = ProviderInfo(
    name="webhook",
    config_model=WebhookConfig,
    required_secrets=frozenset({SECRET}),
    optional_secrets=frozenset({PREVIOUS_SECRET}),
    destinations=_no_destinations,
    receives_webhooks=True,
)
