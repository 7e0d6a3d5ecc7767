"""Webhook signature verification and signing helpers.

Pure functions: no I/O, no clock access, no framework imports. Every ``verify_*`` function
takes ``secrets`` (the one or two active secrets; a delivery signed with any of them is valid),
``headers`` (a mapping whose keys are already lower-cased) and usually ``body`` (raw request
bytes). It returns :class:`Verified` or raises :class:`SignatureError` (or its subclass
:class:`ExpiredSignature`). Timestamped schemes take ``now`` (unix time, from the caller) and
``tolerance`` (seconds); timestamps further than ``tolerance`` from ``now`` in either direction
are rejected.

All signature comparisons use :func:`hmac.compare_digest` and every presented signature is
checked against every secret, so timing does not reveal which secret (if any) matched.
Exception messages are short and safe to return to the caller: they never contain a secret,
an expected signature or a computed digest.

The ``sign_*`` helpers produce valid deliveries for tests, benchmarks and documentation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

DEFAULT_TOLERANCE = 300
"""Default allowed clock skew / replay window, in seconds."""

Encoding = Literal["hex", "base64"]

_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_WHSEC_PREFIX = "whsec_"


class SignatureError(Exception):
    """A delivery failed verification. The message is short and safe to show to clients."""


class ExpiredSignature(SignatureError):
    """The delivery's timestamp is outside the allowed tolerance (too old or too far ahead)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """Result of a successful verification.

    Attributes:
        delivery_id: The delivery id carried by the scheme, if any.
        timestamp: The signed unix timestamp, for timestamped schemes.
    """

    delivery_id: str | None
    timestamp: int | None


def fingerprint(body: bytes) -> str:
    """Return ``"sha256:<hex digest of body>"``, the event key when no delivery id exists."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _check_secrets(secrets: Sequence[str]) -> Sequence[str]:
    if isinstance(secrets, str | bytes):
        raise TypeError("secrets must be a sequence of strings, not a single string")
    if len(secrets) == 0:
        raise SignatureError("no secrets configured")
    if any(not s for s in secrets):
        raise SignatureError("empty secret configured")
    return secrets


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise SignatureError(f"missing header {name}")
    return value


def _malformed(name: str) -> SignatureError:
    return SignatureError(f"malformed header {name}")


def _pairs(items: Iterable[str], sep: str, name: str) -> list[tuple[str, str]]:
    """Split ``key<sep>value`` items; an item without ``sep`` makes the header malformed."""
    out: list[tuple[str, str]] = []
    for item in items:
        key, found, val = item.strip().partition(sep)
        if not found:
            raise _malformed(name)
        out.append((key.strip(), val.strip()))
    return out


def _hmac256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _any_match(expected: Iterable[bytes], presented: Sequence[bytes]) -> bool:
    """Compare every presented signature with every expected digest, without short-circuit."""
    matched = False
    for digest in expected:
        for candidate in presented:
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def _decode_hex(value: str, name: str) -> bytes:
    if not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise _malformed(name)
    return bytes.fromhex(value)


def _decode_b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(name) from None


def _parse_timestamp(value: str) -> int:
    value = value.strip()
    if not _TIMESTAMP_RE.fullmatch(value):
        raise SignatureError("invalid timestamp")
    return int(value)


def _check_tolerance(timestamp: int, now: float, tolerance: int) -> None:
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    if timestamp < now - tolerance or timestamp > now + tolerance:
        raise ExpiredSignature("timestamp outside tolerance")


def _mismatch() -> SignatureError:
    return SignatureError("signature mismatch")


_GITHUB_HEADER = "X-Hub-Signature-256"
_GITHUB_DELIVERY = "X-GitHub-Delivery"


def verify_github(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> Verified:
    """Verify a GitHub delivery (``X-Hub-Signature-256: sha256=<hex>``).

    Returns:
        Verified with ``delivery_id`` from ``X-GitHub-Delivery`` (None if absent).

    Raises:
        SignatureError: Missing/malformed header or no secret matches.
    """
    secrets = _check_secrets(secrets)
    value = _header(headers, _GITHUB_HEADER)
    scheme, sep, hexsig = value.partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        raise _malformed(_GITHUB_HEADER)
    presented = [_decode_hex(hexsig.strip(), _GITHUB_HEADER)]
    expected = [_hmac256(s.encode(), body) for s in secrets]
    if not _any_match(expected, presented):
        raise _mismatch()
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
    secrets = _check_secrets(secrets)
    value = _header(headers, _STRIPE_HEADER)
    pairs = _pairs(value.split(","), "=", _STRIPE_HEADER)
    timestamps = [v for k, v in pairs if k == "t"]
    # other schemes (v0, ...) are ignored
    presented = [_decode_hex(v, _STRIPE_HEADER) for k, v in pairs if k == "v1"]
    if len(timestamps) != 1:
        raise _malformed(_STRIPE_HEADER)
    if not presented:
        raise SignatureError("no v1 signature")
    ts = _parse_timestamp(timestamps[0])
    payload = f"{ts}.".encode() + body
    expected = [_hmac256(s.encode(), payload) for s in secrets]
    if not _any_match(expected, presented):
        raise _mismatch()
    _check_tolerance(ts, now, tolerance)
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
    secrets = _check_secrets(secrets)
    use_svix = "svix-signature" in headers and "webhook-signature" not in headers
    prefix = "svix" if use_svix else "webhook"
    sig_name = f"{prefix}-signature"
    msg_id = _header(headers, f"{prefix}-id")
    ts = _parse_timestamp(_header(headers, f"{prefix}-timestamp"))
    value = _header(headers, sig_name)
    pairs = _pairs(value.split(), ",", sig_name)
    presented = [_decode_b64(sig, sig_name) for version, sig in pairs if version == "v1"]
    if not presented:
        raise SignatureError("no v1 signature")
    payload = f"{msg_id}.{ts}.".encode() + body
    expected = [_hmac256(_standard_key(s), payload) for s in secrets]
    if not _any_match(expected, presented):
        raise _mismatch()
    _check_tolerance(ts, now, tolerance)
    return Verified(delivery_id=msg_id, timestamp=ts)


def sign_standard(secret: str, body: bytes, *, msg_id: str, timestamp: int) -> dict[str, str]:
    """Produce ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    sig = base64.b64encode(_hmac256(_standard_key(secret), payload)).decode()
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
    secrets = _check_secrets(secrets)
    value = _header(headers, _PAGERDUTY_HEADER)
    pairs = _pairs(value.split(","), "=", _PAGERDUTY_HEADER)
    presented = [_decode_hex(sig, _PAGERDUTY_HEADER) for version, sig in pairs if version == "v1"]
    if not presented:
        raise SignatureError("no v1 signature")
    expected = [_hmac256(s.encode(), body) for s in secrets]
    if not _any_match(expected, presented):
        raise _mismatch()
    return Verified(delivery_id=None, timestamp=None)


def sign_pagerduty(secrets: Sequence[str], body: bytes) -> dict[str, str]:
    """Produce an ``X-PagerDuty-Signature`` header with one ``v1=`` entry per secret."""
    entries = [f"v1={hmac.new(s.encode(), body, hashlib.sha256).hexdigest()}" for s in secrets]
    return {_PAGERDUTY_HEADER: ",".join(entries)}


def _check_encoding(encoding: str) -> None:
    if encoding not in ("hex", "base64"):
        raise ValueError("encoding must be 'hex' or 'base64'")


def verify_hmac(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    header: str,
    encoding: Encoding = "hex",
    prefix: str = "",
    timestamp_header: str | None = None,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Verified:
    """Verify a generic HMAC-SHA256 signature header (``<prefix><hex|base64 digest>``).

    With ``timestamp_header`` set, the signed content is ``"{ts}." + body`` and the timestamp
    must lie within ``tolerance`` of ``now``.

    Args:
        header: Name of the signature header (any case).
        encoding: Digest encoding, ``"hex"`` (case-insensitive) or ``"base64"``.
        prefix: Literal prefix the header value must start with, e.g. ``"sha256="``.
        timestamp_header: Optional name of a header carrying the signed unix timestamp.
        now: Current unix time; required when ``timestamp_header`` is set.
        tolerance: Allowed distance in seconds between the timestamp and ``now``.

    Returns:
        Verified with ``delivery_id=None`` and the timestamp (None without timestamp_header).

    Raises:
        SignatureError: Missing/malformed headers or no secret matches.
        ExpiredSignature: Valid signature but timestamp outside tolerance.
        ValueError: Bad ``encoding``, or ``timestamp_header`` without ``now``.
    """
    _check_encoding(encoding)
    if timestamp_header is not None and now is None:
        raise ValueError("now is required when timestamp_header is set")
    secrets = _check_secrets(secrets)
    value = _header(headers, header)
    if not value.startswith(prefix):
        raise _malformed(header)
    raw = value[len(prefix) :].strip()
    presented = [_decode_hex(raw, header) if encoding == "hex" else _decode_b64(raw, header)]
    ts: int | None = None
    payload = body
    if timestamp_header is not None:
        ts = _parse_timestamp(_header(headers, timestamp_header))
        payload = f"{ts}.".encode() + body
    expected = [_hmac256(s.encode(), payload) for s in secrets]
    if not _any_match(expected, presented):
        raise _mismatch()
    if ts is not None and now is not None:
        _check_tolerance(ts, now, tolerance)
    return Verified(delivery_id=None, timestamp=ts)


def sign_hmac(
    secret: str,
    body: bytes,
    *,
    encoding: Encoding = "hex",
    prefix: str = "",
    timestamp: int | None = None,
) -> str:
    """Produce a header value for :func:`verify_hmac`.

    Args:
        secret: Shared secret.
        body: Raw body to sign.
        encoding: ``"hex"`` or ``"base64"``.
        prefix: Literal prefix to prepend, e.g. ``"sha256="``.
        timestamp: If given, sign ``"{timestamp}." + body`` (send it in the timestamp header).
    """
    _check_encoding(encoding)
    payload = body if timestamp is None else f"{timestamp}.".encode() + body
    digest = _hmac256(secret.encode(), payload)
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + encoded


def verify_api_key(secrets: Sequence[str], headers: Mapping[str, str], *, header: str) -> Verified:
    """Verify a static API key header against the configured keys (constant time).

    Args:
        header: Name of the header carrying the key (any case).

    Returns:
        Verified with no delivery id or timestamp.

    Raises:
        SignatureError: Missing header or no key matches.
    """
    secrets = _check_secrets(secrets)
    value = _header(headers, header)
    presented = [value.encode()]
    if not _any_match((s.encode() for s in secrets), presented):
        raise SignatureError("invalid API key")
    return Verified(delivery_id=None, timestamp=None)
