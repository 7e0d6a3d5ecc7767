"""The one redaction step: secret values this process holds never reach a log line.

Activities register the decrypted secrets they load (``hold``) and release them when done;
``RedactingFilter``, installed on the process's log handler by the worker and API log
setup (``install``), replaces every occurrence (also URL-encoded or escaped as in a repr)
with ``***`` in the message, its arguments, the formatted traceback and stack. Error
messages built for users and Temporal go through the same ``redact``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

MASK = "***"

_lock = threading.Lock()
_held: Counter[str] = Counter()
# Longest first, so that a secret containing another is masked whole. Replaced, never
# mutated: log calls on other threads read it without the lock.
_forms: tuple[str, ...] = ()


def _variants(value: str) -> set[str]:
    """The spellings a value takes in text: as is, URL-encoded, escaped as in a repr."""
    return {value, quote(value, safe=""), quote_plus(value, safe=""), repr(value)[1:-1]}


def _rebuild() -> None:
    global _forms
    forms = {form for value in _held for form in _variants(value) if form}
    _forms = tuple(sorted(forms, key=len, reverse=True))


def register(values: Iterable[str]) -> list[str]:
    """Start masking ``values`` (empty ones are ignored); returns what to ``release``."""
    taken = [v for v in values if isinstance(v, str) and v]
    if taken:
        with _lock:
            _held.update(taken)
            _rebuild()
    return taken


def release(values: Iterable[str]) -> None:
    """Stop masking values registered once more than released."""
    with _lock:
        for value in values:
            _held[value] -= 1
            if _held[value] <= 0:
                del _held[value]
        _rebuild()


@contextmanager
def hold(values: Iterable[str]) -> Iterator[None]:
    taken = register(values)
    try:
        yield
    finally:
        release(taken)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every held secret (and each of ``extra``) replaced by ``***``."""
    forms = _forms
    more = {form for value in extra if value for form in _variants(value) if form}
    if more:
        forms = tuple(sorted(more.union(forms), key=len, reverse=True))
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks held secrets in a record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _forms:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(*handlers: logging.Handler) -> None:
    """Put the filter on ``handlers`` (default: the root logger's). Records of every logger
    reach the root's handlers unless a logger stops propagation, so the log setup keeps
    one handler, on the root."""
    for handler in handlers or tuple(logging.getLogger().handlers):
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
