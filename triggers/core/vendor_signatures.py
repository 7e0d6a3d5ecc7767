"""Signature schemes of specific senders: GitHub, Stripe, Standard Webhooks / Svix, PagerDuty.

Each has a ``verify_*`` (the contract of ``triggers.core.signatures``: ``secrets``,
lower-cased ``headers``, the raw ``body``; timestamped schemes take ``now`` and
``tolerance``) and a ``sign_*`` that produces a valid delivery for tests, benchmarks and
documentation. The generic schemes a user configures (``hmac``, ``api_key``), the errors
and the shared checks are in ``triggers.core.signatures``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from triggers.core.signatures import (
    DEFAULT_TOLERANCE,
    SignatureError,
    Verified,
    any_match,
    check_secrets,
    check_tolerance,
    decode_b64,
    decode_hex,
    header_value,
    hmac256,
    malformed,
    mismatch,
    parse_timestamp,
    split_pairs,
)

_WHSEC_PREFIX = "whsec_"


_GITHUB_HEADER = "X-Hub-Signature-256"
_GITHUB_DELIVERY = "X-GitHub-Delivery"


def verify_github(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> Verified:
    """Verify a GitHub delivery (``X-Hub-Signature-256: sha256=<hex>``).

    Returns:
        Verified with ``delivery_id`` from ``X-GitHub-Delivery`` (None if absent).

    Raises:
        SignatureError: Missing/malformed header or no secret matches.
    """
    secrets = check_secrets(secrets)
    value = header_value(headers, _GITHUB_HEADER)
    scheme, sep, hexsig = value.partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        raise malformed(_GITHUB_HEADER)
    presented = [decode_hex(hexsig.strip(), _GITHUB_HEADER)]
    expected = [hmac256(s.encode(), body) for s in secrets]
    if not any_match(expected, presented):
        raise mismatch()
    delivery = (headers.get(_GITHUB_DELIVERY.lower()) or "").strip()
    return Verified(delivery_id=delivery or None, timestamp=None)


def sign_github(secret: str, body: bytes, delivery_id: str | None = None) -> dict[str, str]:
    """Produce ``X-Hub-Signature-256`` (and ``X-GitHub-Delivery`` if ``delivery_id`` given)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    out = {_GITHUB_HEADER: f"sha256={digest}"}
    if delivery_id is not None:
        out[_GITHUB_DELIVERY] = delivery_id
    return out


_STRIPE_HEADER = "Stripe-Signature"


def verify_stripe(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Verified:
    """Verify a Stripe delivery (``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``).

    The signed payload is ``"{t}." + body``; the key is the full ``whsec_...`` string. The
    signature is checked before the timestamp, so only authentic old deliveries report
    :class:`ExpiredSignature`.

    Returns:
        Verified with ``delivery_id=None`` and the signed timestamp.

    Raises:
        SignatureError: Missing/malformed header or no secret matches.
        ExpiredSignature: Valid signature but timestamp outside tolerance.
    """
    secrets = check_secrets(secrets)
    value = header_value(headers, _STRIPE_HEADER)
    pairs = split_pairs(value.split(","), "=", _STRIPE_HEADER)
    timestamps = [v for k, v in pairs if k == "t"]
    # other schemes (v0, ...) are ignored
    presented = [decode_hex(v, _STRIPE_HEADER) for k, v in pairs if k == "v1"]
    if len(timestamps) != 1:
        raise malformed(_STRIPE_HEADER)
    if not presented:
        raise SignatureError("no v1 signature")
    ts = parse_timestamp(timestamps[0])
    payload = f"{ts}.".encode() + body
    expected = [hmac256(s.encode(), payload) for s in secrets]
    if not any_match(expected, presented):
        raise mismatch()
    check_tolerance(ts, now, tolerance)
    return Verified(delivery_id=None, timestamp=ts)


def sign_stripe(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """Produce ``{"Stripe-Signature": "t=<timestamp>,v1=<hex>"}`` (key: the whole secret)."""
    payload = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return {_STRIPE_HEADER: f"t={timestamp},v1={digest}"}


def _standard_key(secret: str) -> bytes:
    if secret.startswith(_WHSEC_PREFIX):
        try:
            return base64.b64decode(secret[len(_WHSEC_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("invalid whsec_ secret (not base64)") from None
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def verify_standard(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Verified:
    """Verify a Standard Webhooks / Svix delivery.

    Reads ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or the ``svix-*``
    equivalents when no ``webhook-signature`` header is present). The signature header holds
    space-separated ``v1,<base64>`` entries; other versions are ignored.

    Returns:
        Verified with ``delivery_id`` = message id and the signed timestamp.

    Raises:
        SignatureError: Missing/malformed headers or no secret matches.
        ExpiredSignature: Valid signature but timestamp outside tolerance.
    """
    secrets = check_secrets(secrets)
    use_svix = "svix-signature" in headers and "webhook-signature" not in headers
    prefix = "svix" if use_svix else "webhook"
    sig_name = f"{prefix}-signature"
    msg_id = header_value(headers, f"{prefix}-id")
    ts = parse_timestamp(header_value(headers, f"{prefix}-timestamp"))
    value = header_value(headers, sig_name)
    pairs = split_pairs(value.split(), ",", sig_name)
    presented = [decode_b64(sig, sig_name) for version, sig in pairs if version == "v1"]
    if not presented:
        raise SignatureError("no v1 signature")
    payload = f"{msg_id}.{ts}.".encode() + body
    expected = [hmac256(_standard_key(s), payload) for s in secrets]
    if not any_match(expected, presented):
        raise mismatch()
    check_tolerance(ts, now, tolerance)
    return Verified(delivery_id=msg_id, timestamp=ts)


def sign_standard(secret: str, body: bytes, *, msg_id: str, timestamp: int) -> dict[str, str]:
    """Produce ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    sig = base64.b64encode(hmac256(_standard_key(secret), payload)).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{sig}",
    }


_PAGERDUTY_HEADER = "X-PagerDuty-Signature"


def verify_pagerduty(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> Verified:
    """Verify a PagerDuty v3 delivery (``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]``).

    Returns:
        Verified with ``delivery_id=None`` (the caller may use ``x-webhook-id``).

    Raises:
        SignatureError: Missing/malformed header or no secret matches.
    """
    secrets = check_secrets(secrets)
    value = header_value(headers, _PAGERDUTY_HEADER)
    pairs = split_pairs(value.split(","), "=", _PAGERDUTY_HEADER)
    presented = [decode_hex(sig, _PAGERDUTY_HEADER) for version, sig in pairs if version == "v1"]
    if not presented:
        raise SignatureError("no v1 signature")
    expected = [hmac256(s.encode(), body) for s in secrets]
    if not any_match(expected, presented):
        raise mismatch()
    return Verified(delivery_id=None, timestamp=None)


def sign_pagerduty(secrets: Sequence[str], body: bytes) -> dict[str, str]:
    """Produce an ``X-PagerDuty-Signature`` header with one ``v1=`` entry per secret."""
    entries = [f"v1={hmac.new(s.encode(), body, hashlib.sha256).hexdigest()}" for s in secrets]
    return {_PAGERDUTY_HEADER: ",".join(entries)}
