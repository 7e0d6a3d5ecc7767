"""API keys: random bearer tokens, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "tt_"


def new_api_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no brute force possible).
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The first characters of a key, kept in clear so a user can tell keys apart."""
    return key[: len(PREFIX) + 6]
