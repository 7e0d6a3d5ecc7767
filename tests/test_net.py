"""The outbound request guard: refused before any connection, allowed where the owner says so.

Only 127.0.0.1 ever receives traffic here: refused addresses are literals (resolving them
sends nothing) and the guard refuses before it connects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tests.local_http import LocalServer
from triggers.infra import net
from triggers.infra.net import Allowlist, BlockedAddress, blocked_reason, check_url, guarded_client
from triggers.providers.base import ProviderConfigError

REFUSED = [
    "http://127.0.0.1/",
    "http://127.1.2.3:8080/x",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_non_public_addresses_are_refused(url: str) -> None:
    host = httpx.URL(url).host
    with pytest.raises(BlockedAddress, match=f"requests to {host} are refused"):
        await check_url(url, [])


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "https://[2606:4700:4700::1111]:8443/x"])
async def test_public_addresses_pass(url: str) -> None:
    await check_url(url, [])


async def test_allowlist_entries_cover_ips_networks_and_host_names() -> None:
    await check_url("http://127.0.0.1:9/", ["127.0.0.1"])
    await check_url("http://127.0.0.5:9/", ["127.0.0.0/8"])
    await check_url("http://[::ffff:127.0.0.1]/", ["127.0.0.0/8"])
    await check_url("http://localhost:9/", ["localhost"])  # whatever localhost resolves to
    await check_url("http://[::1]/", ["::1"])
    with pytest.raises(BlockedAddress):
        await check_url("http://127.0.0.2/", ["127.0.0.1"])
    with pytest.raises(BlockedAddress):
        await check_url("http://169.254.169.254/", ["127.0.0.0/8", "localhost"])


async def test_messages_name_the_host_but_not_credentials() -> None:
    with pytest.raises(BlockedAddress) as caught:
        await check_url("http://alice:hunter2@10.1.2.3:8080/x?token=s3cret", [])
    message = str(caught.value)
    assert "10.1.2.3" in message
    assert "hunter2" not in message and "s3cret" not in message and "alice" not in message


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///x", "::"])
async def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(ProviderConfigError):
        await check_url(url, [])


def test_bad_allowlist_entries_are_config_errors() -> None:
    with pytest.raises(ProviderConfigError, match="allowlist"):
        Allowlist.parse(["10.0.0.0/33"])
    assert Allowlist.parse(["API.Example.com."]).hostnames == {"api.example.com"}


def test_every_private_range_has_a_reason() -> None:
    assert blocked_reason(ipaddress.ip_address("100.127.255.255")) == "shared (CGNAT)"
    assert blocked_reason(ipaddress.ip_address("169.254.169.254")) == "link-local"
    assert blocked_reason(ipaddress.ip_address("1.1.1.1")) is None


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    srv = LocalServer()
    await srv.start()
    yield srv
    await srv.stop()


async def test_client_refuses_loopback_without_allowlist(server: LocalServer) -> None:
    async with guarded_client([]) as client:
        with pytest.raises(BlockedAddress):
            await client.get(server.url + "/")
    assert server.requests == []


async def test_client_reaches_an_allowlisted_server(server: LocalServer) -> None:
    server.handler = lambda _r: JSONResponse({"ok": True})
    async with guarded_client(["127.0.0.1"]) as client:
        response = await client.get(server.url + "/")
    assert response.json() == {"ok": True}


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://127.0.0.2:{port}/",
        "http://[::1]:{port}/",
        "http://[::ffff:192.168.0.1]/",
    ],
)
async def test_redirects_are_checked_at_every_hop(server: LocalServer, target: str) -> None:
    def handler(request: Request) -> Response:
        if request.url.path == "/start":
            return RedirectResponse("/hop", status_code=302)
        return RedirectResponse(target.format(port=server.port), status_code=302)

    server.handler = handler
    async with guarded_client(["127.0.0.1"], follow_redirects=True) as client:
        with pytest.raises(BlockedAddress):
            await client.get(server.url + "/start")
    assert [r.path for r in server.requests] == ["/start", "/hop"]


async def test_allowed_redirects_are_followed(server: LocalServer) -> None:
    def handler(request: Request) -> Response:
        if request.url.path == "/start":
            return RedirectResponse(f"http://127.0.0.1:{server.port}/end", status_code=307)
        return JSONResponse({"at": request.url.path})

    server.handler = handler
    async with guarded_client(["127.0.0.1"], follow_redirects=True) as client:
        response = await client.get(server.url + "/start")
    assert response.json() == {"at": "/end"}


async def test_the_connection_goes_to_the_checked_address(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport connects to what it resolved and checked: no second lookup to rebind."""
    answers = {"api.example.test": ["127.0.0.1"], "evil.example.test": ["8.8.8.8", "10.0.0.7"]}

    async def fake_resolve(host: str, port: int) -> list[net.IPAddress]:
        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(net, "resolve", fake_resolve)
    server.handler = lambda r: JSONResponse({"host": r.headers["host"]})
    async with guarded_client(["127.0.0.1"]) as client:
        response = await client.get(f"http://api.example.test:{server.port}/")
        assert response.json() == {"host": f"api.example.test:{server.port}"}
        with pytest.raises(BlockedAddress, match="evil.example.test.*10.0.0.7"):
            await client.get("http://evil.example.test/")
