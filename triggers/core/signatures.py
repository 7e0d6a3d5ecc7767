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

This module holds the contract (errors, :class:`Verified`, :func:`fingerprint`), the checks
every scheme shares, and the generic schemes a user configures (``hmac``, ``api_key``); the
schemes of specific senders (GitHub, Stripe, Standard Webhooks / Svix, PagerDuty) are in
``triggers.core.vendor_signatures``.
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


def check_secrets(secrets: Sequence[str]) -> Sequence[str]:
    if isinstance(secrets, str | bytes):
        raise TypeError("secrets must be a sequence of strings, not a single string")
    if len(secrets) == 0:
        raise SignatureError("no secrets configured")
    if any(not s for s in secrets):
        raise SignatureError("empty secret configured")
    return secrets


def header_value(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise SignatureError(f"missing header {name}")
    return value


def malformed(name: str) -> SignatureError:
    return SignatureError(f"malformed header {name}")


def split_pairs(items: Iterable[str], sep: str, name: str) -> list[tuple[str, str]]:
    """Split ``key<sep>value`` items; an item without ``sep`` makes the header malformed."""
    out: list[tuple[str, str]] = []
    for item in items:
        key, found, val = item.strip().partition(sep)
        if not found:
            raise malformed(name)
        out.append((key.strip(), val.strip()))
    return out


def hmac256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def any_match(expected: Iterable[bytes], presented: Sequence[bytes]) -> bool:
    """Compare every presented signature with every expected digest, without short-circuit."""
    matched = False
    for digest in expected:
        for candidate in presented:
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def decode_hex(value: str, name: str) -> bytes:
    if not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise malformed(name)
    return bytes.fromhex(value)


def decode_b64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise malformed(name) from None


def parse_timestamp(value: str) -> int:
    value = value.strip()
    if not _TIMESTAMP_RE.fullmatch(value):
        raise SignatureError("invalid timestamp")
    return int(value)


def check_tolerance(timestamp: int, now: float, tolerance: int) -> None:
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    if timestamp < now - tolerance or timestamp > now + tolerance:
        raise ExpiredSignature("timestamp outside tolerance")


def mismatch() -> SignatureError:
    return SignatureError("signature mismatch")


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
    secrets = check_secrets(secrets)
    value = header_value(headers, header)
    if not value.startswith(prefix):
        raise malformed(header)
    raw = value[len(prefix) :].strip()
    presented = [decode_hex(raw, header) if encoding == "hex" else decode_b64(raw, header)]
    ts: int | None = None
    payload = body
    if timestamp_header is not None:
        ts = parse_timestamp(header_value(headers, timestamp_header))
        payload = f"{ts}.".encode() + body
    expected = [hmac256(s.encode(), payload) for s in secrets]
    if not any_match(expected, presented):
        raise mismatch()
    if ts is not None and now is not None:
        check_tolerance(ts, now, tolerance)
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
    digest = hmac256(secret.encode(), payload)
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
    secrets = check_secrets(secrets)
    value = header_value(headers, header)
    presented = [value.encode()]
    if not any_match((s.encode() for s in secrets), presented):
        raise SignatureError("invalid API key")
    return Verified(delivery_id=None, timestamp=None)
