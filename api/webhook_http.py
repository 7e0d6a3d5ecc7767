"""What the webhook route checks about a delivery as HTTP, before any signature work:
header size, repeated headers, content coding, and a body read that stops at the limit and
at a deadline. Refusals say when the connection closes (``Connection: close``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

# Request headers over this many bytes (names and values) are refused with 431. uvicorn's
# parser (h11) refuses a head over 16 KiB only when it arrives in several reads; this makes
# the bound the same however the bytes arrive.
MAX_HEADER_BYTES = 16 * 1024
# An answer given before the body was read leaves the rest of it on the connection. uvicorn
# reads and discards that rest to keep the connection; for more than this (or a chunked
# body of unknown length) closing costs less than reading what nobody wants.
DRAIN_BYTES = 256 * 1024


class BodyRefused(Exception):
    """The body could not be read within its bounds; ``status`` is the answer's code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def answer(
    code: int,
    message: str,
    *,
    close: bool = False,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A refusal with ``{"detail": message}``; ``close`` ends the connection after it."""
    out = dict(headers or {})
    if close:
        out["Connection"] = "close"
    return JSONResponse(status_code=code, content={"detail": message}, headers=out or None)


def unread_body_is_large(request: Request) -> bool:
    """Whether a body not read yet may be larger than ``DRAIN_BYTES``: then an answer
    given before reading it closes the connection."""
    declared = request.headers.get("content-length")
    if declared is not None:
        return not declared.isdigit() or int(declared) > DRAIN_BYTES
    return "transfer-encoding" in request.headers


def header_bytes(request: Request) -> int:
    return sum(len(name) + len(value) for name, value in request.headers.raw)


def repeated(request: Request, names: Iterable[str]) -> str | None:
    """The first of ``names`` (lower case) that the request carries more than once."""
    wanted = set(names)
    seen: set[bytes] = set()
    for raw_name, _ in request.headers.raw:
        name = raw_name.lower()
        if name.decode("latin-1") in wanted:
            if name in seen:
                return name.decode("latin-1")
            seen.add(name)
    return None


def content_coding_refused(request: Request) -> str | None:
    """A message when the body has a content coding other than identity (415).

    Decoding is refused rather than bounded: every signature scheme signs the bytes as
    sent, no preset's sender compresses, and a decoder is where a small request (a gzip
    bomb: 64 KiB that inflates to 64 MiB) becomes a large one."""
    codings = [
        c.strip().lower()
        for value in request.headers.getlist("content-encoding")
        for c in value.split(",")
        if c.strip()
    ]
    if any(c != "identity" for c in codings):
        return "content encoding is not supported; send the body uncompressed"
    return None


async def read_body(request: Request, *, limit: int, timeout: float) -> bytes:
    """The body, read as it arrives: at most ``limit`` bytes are kept (more is 413) and
    it must be complete within ``timeout`` seconds (408). Raises ``BodyRefused``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyRefused(413, f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, f"body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"body not received within {timeout:g} s") from None
    except ClientDisconnect:
        # Nobody reads this answer; it keeps a vanished sender out of the error log.
        raise BodyRefused(400, "the sender closed the connection before the body ended") from None
    return b"".join(chunks)
