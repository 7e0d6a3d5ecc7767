"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from triggers.infra.settings import Settings

URL = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*'([^']+)'""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_local_assets(http: httpx.AsyncClient, page: str) -> None:
    r = await http.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "://" not in r.text, "the page loads something from another host"
    urls = {a or b for a, b in URL.findall(r.text)}
    assets = {u for u in urls if not u.endswith(".json")}
    assert len(assets) >= (3 if page == "/docs" else 2), urls
    assert "/openapi.json" in urls
    for url in sorted(urls):
        assert url.startswith("/"), url
        got = await http.get(url)
        assert got.status_code == 200, url
        kind = next(v for k, v in TYPES.items() if url.endswith(k))
        assert kind in got.headers["content-type"], (url, got.headers["content-type"])
        assert len(got.content) > 100, url
    if page == "/docs":
        bundle = await http.get("/docs-assets/swagger-ui-bundle.js")
        assert b"SwaggerUIBundle" in bundle.content
        # Swagger UI 5 or later: FastAPI's OpenAPI 3.1 documents need it.
        assert b"isOAS31" in bundle.content
