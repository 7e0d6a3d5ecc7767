"""The ``http_request`` graph node: one HTTP call through the outbound request guard.

The activity loads the trigger's owner from the database itself and uses the owner's
network allowlist, exactly as polling sources do: a graph cannot reach private addresses
its owner has not allowed. Errors name the host, never the URL's query or credentials.
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

from triggers import net, store
from triggers.models import User
from triggers.providers.base import ProviderConfigError, ProviderError
from workflows.types import HttpRequestInput, HttpResponse

# Responses ride in workflow history (the run's next nodes see them): keep them small.
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 50
# Error types the workflow and the retry policy know.
BLOCKED = "BlockedAddress"
REQUEST_ERROR = "RequestError"
HTTP_STATUS = "HttpStatus"
NON_RETRYABLE = (BLOCKED, REQUEST_ERROR)


class HttpActivities:
    """Activities with the clients they need, built once by the worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _allowlist(self, trigger_id: str) -> Sequence[str]:
        async with self._sessions() as session:
            trigger = await store.get_trigger(session, trigger_id=uuid.UUID(trigger_id))
            owner = await session.get(User, trigger.user_id) if trigger else None
        if trigger is None or owner is None:
            raise _fail("the trigger no longer exists", REQUEST_ERROR)
        return tuple(owner.network_allowlist)

    @activity.defn(name="http_request")
    async def http_request(self, inp: HttpRequestInput) -> HttpResponse:
        allowlist = await self._allowlist(inp.trigger_id)
        where = _where(inp.url)
        # Errors are built inside ``except`` and raised outside it, so that no httpx error
        # (whose text may hold a header value) rides along as ``__context__``.
        failure: ApplicationError | None = None
        try:
            await net.check_url(inp.url, allowlist)
            async with net.guarded_client(allowlist, timeout=inp.timeout_seconds) as client:
                request = _build(client, inp)
                response = await client.send(request, stream=True)
                try:
                    content, truncated = await _read(response)
                finally:
                    await response.aclose()
        except net.BlockedAddress as exc:
            failure = _fail(str(exc), BLOCKED, non_retryable=True)
        except ProviderConfigError as exc:
            failure = _fail(str(exc), REQUEST_ERROR, non_retryable=True)
        except ProviderError as exc:  # transient: DNS
            failure = _fail(str(exc), "Transient")
        except httpx.TimeoutException:
            failure = _fail(f"{where}: timed out", "Timeout")
        except httpx.TooManyRedirects:
            failure = _fail(f"{where}: too many redirects", REQUEST_ERROR, non_retryable=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError):
            failure = _fail(
                f"{where}: the request could not be sent", REQUEST_ERROR, non_retryable=True
            )
        except httpx.TransportError as exc:
            failure = _fail(f"{where}: {type(exc).__name__}", "Transient")
        if failure is not None:
            raise failure
        result = HttpResponse(
            status=response.status_code,
            headers=dict(list(response.headers.items())[:MAX_HEADERS]),
            body=_decode(content, response.headers.get("content-type", "")),
            truncated=truncated,
        )
        last = activity.info().attempt >= inp.attempts
        if response.status_code >= 500 and not last:
            # Retried by the activity's retry policy; the last attempt's answer is the result.
            raise _fail(f"{where}: HTTP {response.status_code}", HTTP_STATUS)
        return result


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
