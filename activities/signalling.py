"""What the pull sink (``activities/pull_sink.py``) and the stream runtime
(``activities/stream.py``) share: how events are cut into signals, and how an error is put
into words for users and logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from triggers.infra import redaction
from triggers.providers import UnknownProvider
from triggers.providers.base import ProviderConfigError, ProviderTransientError

# Events per signal, and their approximate bytes: Temporal payloads stay small.
MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 512 * 1024

T = TypeVar("T")


def batches(items: list[T], size: Callable[[T], int]) -> list[list[T]]:
    """``items`` in order, cut into signals of at most ``MAX_BATCH_EVENTS`` items and about
    ``MAX_BATCH_BYTES`` (``size`` gives an item's approximate bytes)."""
    out: list[list[T]] = []
    total = 0
    for item in items:
        approx = size(item)
        if not out or len(out[-1]) >= MAX_BATCH_EVENTS or total + approx > MAX_BATCH_BYTES:
            out.append([])
            total = 0
        out[-1].append(item)
        total += approx
    return out


def describe(exc: BaseException, secrets: dict[str, str] | None = None) -> str:
    """A message for users and logs: never a secret, even one a library echoed."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid config: {where}: {first['msg']}"
    if isinstance(exc, UnknownProvider):
        return f"unknown provider {exc.args[0]!r}"
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, ProviderConfigError | ProviderTransientError):
        text = f"{type(exc).__name__}: {text}"
    return redaction.redact(text, (secrets or {}).values())[:500]
