"""The builder page's session: the API key a user signed in with, sealed (encrypted and
authenticated) in an HttpOnly, SameSite=Strict cookie, together with the session's CSRF
token. The key is checked against the database on every request, so revoking it ends the
session; the cookie never holds it in clear and expires after ``SESSION_SECONDS``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SESSION_COOKIE = "tt_session"
# Before sign-in: the double-submit token of the sign-in form.
SIGNIN_COOKIE = "tt_signin"
SESSION_SECONDS = 12 * 3600
# A cookie longer than this is not ours (a sealed key and token are ~300 characters).
MAX_COOKIE_CHARS = 2048
MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class Session:
    api_key: str
    csrf: str


def _derive(key: str) -> Fernet:
    """A key of its own for sessions, derived from a secret-encryption key: a sealed session
    is never a valid secrets blob, nor the reverse."""
    digest = hashlib.sha256(b"temporal-triggers ui session\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SessionSealer:
    """Seals and opens session cookies with keys derived from ``TRIGGERS_SECRET_KEYS``
    (newest first, so a key rotation keeps sessions of the older key readable)."""

    def __init__(self, secret_keys: str) -> None:
        keys = [k.strip() for k in secret_keys.split(",") if k.strip()]
        self._fernet = MultiFernet([_derive(k) for k in keys])

    def seal(self, session: Session) -> str:
        body = json.dumps({"k": session.api_key, "c": session.csrf}).encode()
        return self._fernet.encrypt(body).decode()

    def open(self, value: str | None) -> Session | None:
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            data = json.loads(self._fernet.decrypt(value.encode(), ttl=SESSION_SECONDS))
        except (InvalidToken, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        key, csrf = data.get("k"), data.get("c")
        if not isinstance(key, str) or not isinstance(csrf, str):
            return None
        return Session(api_key=key, csrf=csrf)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    if not given or not expected or len(given) > 100:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
