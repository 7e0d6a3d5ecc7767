"""Encryption of trigger secrets at rest (Fernet, with MultiFernet for key rotation)."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretKeyError(RuntimeError):
    """The configured encryption keys are missing or unusable."""


class SecretBox:
    """Encrypts and decrypts a trigger's secrets as one JSON object.

    The first key encrypts; every key decrypts, so a new key can be put in front
    while old ciphertexts are still readable (``rotate`` re-encrypts them).
    """

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret encryption key configured (TRIGGERS_SECRET_KEYS)")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                "TRIGGERS_SECRET_KEYS holds a key that is not a Fernet key"
            ) from exc

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        return cls([k.strip() for k in value.split(",") if k.strip()])

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, str]:
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            # Never echo the token: it is ciphertext of a secret.
            raise SecretKeyError(
                "stored secrets cannot be decrypted with the configured keys"
            ) from exc
        return {str(k): str(v) for k, v in data.items()}

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()
