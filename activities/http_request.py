"""The ``http_request`` graph node: one HTTP call through the outbound request guard.

The activity loads the network allowlist of the run's target principal from the database
itself: the user who last changed where the graph sends requests (the owner, unless an
editor did), as a polling source uses its network principal's. A graph cannot reach private
addresses that user has not allowed, and an editor's graph never goes out through the
owner's allowlist. Errors name the host, never the URL's query or credentials.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from triggers.contracts.names import (
    BLOCKED_ADDRESS,
    HTTP_REQUEST_ACTIVITY,
    HTTP_STATUS,
    REQUEST_ERROR,
    TIMEOUT,
    TRANSIENT,
)
from triggers.contracts.run import HttpRequestInput, HttpResponse
from triggers.infra import net, store
from triggers.infra.models import User
from triggers.providers.base import ProviderConfigError, ProviderError

# Responses ride in workflow history (the run's next nodes see them): keep them small.
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 50


class HttpActivities:
    """Activities with the clients they need, built once by the worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _allowlist(self, inp: HttpRequestInput) -> Sequence[str]:
        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(inp.trigger_id))
            if trigger is None:
                raise _fail("the trigger no longer exists", REQUEST_ERROR)
            principal = inp.principal
            if principal is None:  # a run from before target principals
                principal = str(trigger.target_principal_id or "")
            # Nobody (that user is gone): public addresses only, never the owner's.
            user = await session.get(User, uuid.UUID(principal)) if principal else None
        return tuple(user.network_allowlist) if user is not None else ()

    @activity.defn(name=HTTP_REQUEST_ACTIVITY)
    async def http_request(self, inp: HttpRequestInput) -> HttpResponse:
        allowlist = await self._allowlist(inp)
        where = _where(inp.url)
        # The node's last attempt is decided here (its failure is final), not by the retry
        # policy, which allows a few more for attempts a stopping or dying worker cut short:
        # such an attempt counts as one of the node's, but a stop alone fails no run.
        last = activity.info().attempt >= inp.attempts
        # Errors are built inside ``except`` and raised outside it, so that no httpx error
        # (whose text may hold a header value) rides along as ``__context__``.
        failure: ProviderError | None = None
        try:
            await net.check_url(inp.url, allowlist)
            async with net.guarded_client(allowlist, timeout=inp.timeout_seconds) as client:
                request = _build(client, inp)
                response = await client.send(request, stream=True)
                try:
                    content, truncated = await _read(response)
                finally:
                    await response.aclose()
        except ProviderError as exc:  # the guard's: blocked, bad URL, DNS
            failure = exc
        except httpx.HTTPError as exc:
            failure = net.request_failure(exc, where)
            if failure is None:
                raise
        if failure is not None:
            raise _application_error(failure, last=last)
        result = HttpResponse(
            status=response.status_code,
            headers=dict(list(response.headers.items())[:MAX_HEADERS]),
            body=_decode(content, response.headers.get("content-type", "")),
            truncated=truncated,
        )
        if response.status_code >= 500 and not last:
            # Retried by the activity's retry policy; the last attempt's answer is the result.
            raise _fail(f"{where}: HTTP {response.status_code}", HTTP_STATUS)
        return result


def _application_error(exc: ProviderError, *, last: bool) -> ApplicationError:
    """What the node's run sees: what retrying cannot fix is final at once; the rest is
    retried until the node's last attempt."""
    if isinstance(exc, net.BlockedAddress):
        return _fail(str(exc), BLOCKED_ADDRESS, non_retryable=True)
    if isinstance(exc, ProviderConfigError):
        return _fail(str(exc), REQUEST_ERROR, non_retryable=True)
    if isinstance(exc, net.RequestTimeout):
        return _fail(str(exc), TIMEOUT, non_retryable=last)
    return _fail(str(exc), TRANSIENT, non_retryable=last)


def _fail(message: str, kind: str, *, non_retryable: bool = False) -> ApplicationError:
    """A failure of the node's request, not of the worker: the run records it (and fails
    naming the node), so it is BENIGN and the SDK logs it at DEBUG, not as a WARNING with a
    traceback for every refused address or unreachable endpoint of a user's graph."""
    return ApplicationError(
        message, type=kind, non_retryable=non_retryable, category=ApplicationErrorCategory.BENIGN
    )


def _where(url: str) -> str:
    try:
        return net.public_url(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "the URL"


def _build(client: httpx.AsyncClient, inp: HttpRequestInput) -> httpx.Request:
    if inp.body is None or inp.method in ("GET", "HEAD"):
        return client.build_request(inp.method, inp.url, headers=inp.headers)
    if isinstance(inp.body, str):
        return client.build_request(inp.method, inp.url, headers=inp.headers, content=inp.body)
    return client.build_request(inp.method, inp.url, headers=inp.headers, json=inp.body)


async def _read(response: httpx.Response) -> tuple[bytes, bool]:
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > MAX_BODY_BYTES:
            return bytes(content[:MAX_BODY_BYTES]), True
    return bytes(content), False


def _decode(content: bytes, content_type: str) -> Any:
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text
