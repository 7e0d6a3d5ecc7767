"""Outbound request guard: providers that fetch user-given URLs must not reach internal networks.

A trigger's URL is chosen by its owner, and the worker fetching it usually sits inside a
private network next to databases, admin consoles and the cloud metadata endpoint
(169.254.169.254). So every outbound request from a provider goes through this module:

- ``check_url`` refuses, up front, a URL whose host resolves to any non-public address
  (loopback, private, link-local, multicast, reserved, unspecified, CGNAT 100.64/10, and the
  IPv4-mapped / 6to4 / NAT64 / Teredo forms of these) unless the trigger's network allowlist
  covers the address (an IP or CIDR entry) or the host name (an exact host name entry).
- ``guarded_client`` builds an ``httpx.AsyncClient`` whose transport does the same check on
  every TCP connection it opens, so each redirect hop is checked too, and connects to the
  very address it checked. Resolving and connecting happen in one step, so a DNS answer that
  changes between check and use (DNS rebinding) cannot slip a private address in. TLS still
  verifies the certificate against the host name, not the address.

Errors name the host, never the URL's credentials or query.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx

from triggers.providers.base import ProviderConfigError, ProviderError, ProviderTransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SCHEMES = ("http", "https")


class BlockedAddress(ProviderConfigError):
    """The request would reach an address the trigger is not allowed to reach."""


class RequestTimeout(ProviderTransientError):
    """The request (connect, read, write or pool) timed out."""


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``None`` when it is), e.g. ``"loopback"``."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return f"{reason} (embedded in IPv6)" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


@dataclass(frozen=True)
class Allowlist:
    """What a trigger may reach beside public addresses: networks and exact host names."""

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = frozenset()
    folders: tuple[Path, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Entries are IPs (``"127.0.0.1"``), CIDRs (``"10.0.0.0/8"``), host names, or
        ``"file:/absolute/folder"`` for local database files (SQL polling of SQLite)."""
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        folders: list[Path] = []
        for raw in entries:
            entry = raw.strip()
            if entry.startswith("file:"):
                folder = Path(entry[5:])
                if not folder.is_absolute():
                    raise ProviderConfigError(f"allowlist folder {entry!r} is not absolute")
                folders.append(folder.resolve())
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry or not entry:
                    raise ProviderConfigError(
                        f"invalid network allowlist entry {entry!r}"
                    ) from None
                hostnames.add(_normal_host(entry))
        return cls(tuple(networks), frozenset(hostnames), tuple(folders))

    def check_file(self, path: str) -> None:
        """Refuse a local file outside the allowed folders: the service's own database and
        files must not be readable through a trigger."""
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.folders):
            raise BlockedAddress(
                f'the file {path} is outside the folders the owner allowed (add "file:<folder>"'
                " to the network allowlist if this is intended)"
            )

    def covers(self, host: str, address: IPAddress) -> bool:
        if _normal_host(host) in self.hostnames:
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in net for a in candidates for net in self.networks)

    def check(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise ``BlockedAddress`` if any address is neither public nor allowlisted."""
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None and not self.covers(host, address):
                raise BlockedAddress(
                    f"requests to {host} are refused: it resolves to {address}, a {reason} "
                    "address; add it to the trigger's network allowlist if this is intended"
                )


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def url_host(url: str | httpx.URL) -> tuple[str, int]:
    """The (host, port) an http(s) URL points to; ``ProviderConfigError`` if it has none."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL:
        raise ProviderConfigError("the URL is not valid") from None
    if parsed.scheme not in _SCHEMES:
        raise ProviderConfigError(f"only http and https URLs are allowed, not {parsed.scheme!r}")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ProviderConfigError("the URL has no host")
    return host, parsed.port or (443 if parsed.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to, in resolver order, without duplicates."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(_normal_host(host), port, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
    return list(seen)


async def check_host(host: str, port: int, allowlist: Sequence[str]) -> None:
    """Refuse a host (for non-HTTP clients such as database drivers) unless every address it
    resolves to is public or allowlisted."""
    rules = Allowlist.parse(allowlist)
    try:
        addresses = await resolve(host, port)
    except OSError:
        raise ProviderTransientError(f"cannot resolve host {host}") from None
    rules.check(host, addresses)


async def check_url(url: str, allowlist: Sequence[str]) -> None:
    """Refuse ``url`` unless it is http(s) and every address of its host may be reached.

    Raises:
        ProviderConfigError: not an http(s) URL with a host, or a bad allowlist entry.
        BlockedAddress: the host resolves to an address that is neither public nor allowed.
        ProviderTransientError: the host name could not be resolved (DNS may recover).
    """
    host, port = url_host(url)
    await check_host(host, port, allowlist)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address itself."""

    def __init__(self, allowlist: Allowlist) -> None:
        self._allowlist = allowlist
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError:
            raise httpcore.ConnectError(f"cannot resolve host {host}") from None
        self._allowlist.check(host, addresses)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for host {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are refused")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose every connection goes through the address check."""

    def __init__(self, allowlist: Sequence[str], *, verify: bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx does not expose the network backend; swap in a pool built with ours. httpx
        # keeps mapping httpcore errors (timeouts, connect errors) to its own exceptions.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(Allowlist.parse(allowlist)),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url_host(request.url)  # refuses non-http(s) schemes, also on redirects
        return await super().handle_async_request(request)


def guarded_client(allowlist: Sequence[str], **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that only reaches public or allowlisted addresses.

    Environment proxies and ``.netrc`` are ignored (``trust_env=False``): a proxy would do
    the resolving and connecting itself, out of the guard's sight.
    """
    kwargs.setdefault("max_redirects", 5)
    return httpx.AsyncClient(transport=GuardedTransport(allowlist), trust_env=False, **kwargs)


def public_url(url: httpx.URL | str) -> str:
    """The URL without credentials, query or fragment: safe for events and messages."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}{parsed.path}"


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def request_failure(exc: Exception, where: str) -> ProviderError | None:
    """The provider error that stands for an httpx (or header encoding) error of a request
    to ``where``, or ``None`` for an error this does not map (let that one propagate).

    The message names ``where`` and at most the error's type, never the error's text, which
    may hold a header value. Raise the result outside the ``except`` that caught ``exc``, so
    that ``exc`` does not ride along as ``__context__``. The URL was checked before the
    request, so an unsupported or invalid URL can only come from a redirect.
    """
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"{where}: timed out")
    if isinstance(exc, httpx.TooManyRedirects):
        return ProviderConfigError(f"{where}: too many redirects")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProviderConfigError(f"{where}: redirected to an unsupported URL")
    if isinstance(exc, httpx.LocalProtocolError | UnicodeError):
        return ProviderConfigError(f"{where}: the request could not be sent")
    if isinstance(exc, httpx.TransportError):
        return ProviderTransientError(f"{where}: {type(exc).__name__}")
    return None


_REFUSED = {
    401: "refused the credentials (401 Unauthorized)",
    403: "refused access (403 Forbidden)",
    404: "has no such resource (404 Not Found)",
}


def raise_for_status(response: httpx.Response, where: str, now: datetime) -> None:
    """Map a non-2xx answer to a provider error, without its body (it may echo secrets).

    429 and 5xx (and 408, 425) may pass: ``ProviderTransientError``, with ``retry_after``
    from the ``Retry-After`` header. Other answers need a config change: 401/403/404 and
    other 4xx, and 3xx left over after redirects.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    wait = retry_after(response.headers.get("retry-after"), now)
    if status == 429:
        raise ProviderTransientError(f"{where}: rate limited (429)", retry_after=wait)
    if status >= 500 or status in (408, 425):
        raise ProviderTransientError(f"{where}: answered {status}", retry_after=wait)
    reason = _REFUSED.get(status, f"answered {status}")
    raise ProviderConfigError(f"{where} {reason}")
