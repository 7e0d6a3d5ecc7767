"""The http_poll provider against a real HTTP server on 127.0.0.1, driven through MemorySink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tests.local_http import LocalServer
from tests.sink import MemorySink
from triggers.core.durations import parse_duration
from triggers.core.events import Event
from triggers.infra.net import BlockedAddress
from triggers.providers import get_provider, polling
from triggers.providers.base import (
    Cursor,
    ProviderConfigError,
    ProviderTransientError,
    SourceContext,
    SourceStop,
)
from triggers.providers.http_poll import HttpPollProvider
from triggers.providers.http_poll_config import HttpPollConfig

CLOCK = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALLOW_LOCAL = SourceContext("t-1", "poll", "alice", network_allowlist=("127.0.0.1",))
SECRET = "tok-3f9c1d7e-very-secret"


class PollSink(MemorySink):
    """A MemorySink on a simulated clock that lets the test change the source between polls."""

    def __init__(
        self, *, polls: int, cursor: Cursor = None, between: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(cursor=cursor, clock=CLOCK, stop_after_waits=polls - 1)
        self._between = between

    async def wait(self, seconds: float, *, next_at: datetime | None = None) -> None:
        await super().wait(seconds, next_at=next_at)
        if self._between:
            self._between(len(self.waits))


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    srv = LocalServer()
    await srv.start()
    yield srv
    await srv.stop()


def serve_list(server: LocalServer, items: list[dict[str, Any]], key: str | None = None) -> None:
    """Answer with ``items`` as they are at request time (the test mutates the list)."""
    server.handler = lambda _r: JSONResponse({key: items} if key else items)


async def provider_for(
    config: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    context: SourceContext = ALLOW_LOCAL,
) -> HttpPollProvider:
    provider = HttpPollProvider()
    await provider.init(HttpPollConfig.model_validate(config), secrets or {}, context)
    return provider


async def run(provider: HttpPollProvider, sink: MemorySink) -> MemorySink:
    """Run until the sink stops the loop, as the runtime would."""
    try:
        await provider.run(sink)
    except SourceStop:
        pass
    return sink


def keys(events: list[Event]) -> list[str]:
    return [e.key for e in events]


async def test_only_new_items_are_emitted_across_polls(server: LocalServer) -> None:
    items = [{"id": "a"}, {"id": 2}]
    serve_list(server, items)

    def between(poll: int) -> None:
        if poll == 1:
            items.append({"id": "c"})
        if poll == 2:
            items.pop(0)
            items.extend([{"id": "d"}, {"id": "e"}])

    provider = await provider_for(
        {"url": server.url + "/items", "start_from": "beginning", "interval": "30s"}
    )
    sink = await run(provider, PollSink(polls=4, between=between))
    await provider.shutdown()

    assert keys(sink.events) == ["a", "2", "c", "d", "e"]
    first = sink.events[0]
    assert (first.id, first.type, first.data) == ("a", "http_poll.item", {"id": "a"})
    assert first.source == server.url + "/items" and first.time == CLOCK.isoformat()
    assert len(server.requests) == 4
    assert sink.waits == [30.0, 30.0, 30.0, 30.0]
    assert sink.next_at[0] == CLOCK + timedelta(seconds=30)
    assert sink.cursor == {"seen": ["a", "2", "c", "d", "e"]}


async def test_start_from_now_records_what_exists_without_emitting(server: LocalServer) -> None:
    items = [{"id": "a"}, {"id": "b"}]
    serve_list(server, items, key="data")
    provider = await provider_for({"url": server.url, "items": "$.data[*]"})
    sink = await run(provider, PollSink(polls=2, between=lambda _: items.append({"id": "c"})))
    await provider.shutdown()

    assert keys(sink.events) == ["c"]
    assert sink.cursors[0] == {"seen": ["a", "b"]}  # recorded by the first poll, no events


async def test_the_cursor_moves_only_after_emit_returned(server: LocalServer) -> None:
    serve_list(server, [{"id": "a"}])

    class FailingSink(PollSink):
        async def emit(self, events: Any, *, cursor: Cursor = None) -> None:
            raise RuntimeError("the trigger workflow is unreachable")

    provider = await provider_for({"url": server.url, "start_from": "beginning"})
    sink = FailingSink(polls=1, cursor={"seen": []})
    with pytest.raises(RuntimeError):
        await provider.run(sink)
    await provider.shutdown()
    assert sink.cursor == {"seen": []} and sink.cursors == []


@pytest.mark.parametrize("style", ["body", "header"])
async def test_pagination_by_next_link(server: LocalServer, style: str) -> None:
    pages = {1: [{"id": 1}, {"id": 2}], 2: [{"id": 3}, {"id": 4}], 3: [{"id": 5}]}

    def handler(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        nxt = f"/items?page={page + 1}" if page < 3 else None
        if style == "body":
            return JSONResponse({"data": pages[page], "links": {"next": nxt}})
        link = {"link": f'<{server.url}{nxt}>; rel="next"'} if nxt else {}
        return JSONResponse({"data": pages[page]}, headers=link)

    server.handler = handler
    provider = await provider_for(
        {
            "url": server.url + "/items",
            "items": "$.data",
            "next_link": "$.links.next" if style == "body" else "header:link",
            "start_from": "beginning",
        }
    )
    sink = await run(provider, PollSink(polls=1))
    await provider.shutdown()

    assert keys(sink.events) == ["1", "2", "3", "4", "5"]
    assert [r.query.get("page") for r in server.requests] == [None, "2", "3"]


async def test_pagination_by_cursor_parameter(server: LocalServer) -> None:
    pages = {"": ([{"id": "a"}], "p2"), "p2": ([{"id": "b"}], "p3"), "p3": ([{"id": "c"}], None)}

    def handler(request: Request) -> Response:
        found, nxt = pages[request.query_params.get("after", "")]
        return JSONResponse({"results": found, "meta": {"next_cursor": nxt}})

    server.handler = handler
    provider = await provider_for(
        {
            "url": server.url + "/search?kind=issue",
            "query": {"limit": "1"},
            "items": "$.results[*]",
            "cursor_param": "after",
            "next_cursor": "$.meta.next_cursor",
            "start_from": "beginning",
        }
    )
    sink = await run(provider, PollSink(polls=1))
    await provider.shutdown()

    assert keys(sink.events) == ["a", "b", "c"]
    assert [r.query for r in server.requests] == [
        {"kind": "issue", "limit": "1"},
        {"kind": "issue", "limit": "1", "after": "p2"},
        {"kind": "issue", "limit": "1", "after": "p3"},
    ]


async def test_watermark_with_ties_and_late_items(server: LocalServer) -> None:
    t1, t2, t3 = "2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z", "2024-05-01T10:09:00+00:00"
    items = [
        {"id": "a", "updated": t1},
        {"id": "b", "updated": t2},
        {"id": "c", "updated": t2},
    ]

    def handler(request: Request) -> Response:
        since = request.query_params.get("since")  # inclusive, as many APIs are
        shown = [i for i in items if since is None or i["updated"] >= since]
        return JSONResponse({"data": shown})

    def between(poll: int) -> None:
        if poll == 1:
            items.append({"id": "d", "updated": t2})  # same time as b and c: a tie, still new
            items.append({"id": "late", "updated": t1})  # below the watermark: never seen
            items.append({"id": "e", "updated": t3})

    server.handler = handler
    provider = await provider_for(
        {
            "url": server.url,
            "items": "$.data[*]",
            "watermark_field": "updated",
            "query": {"since": "{{cursor.watermark}}"},
            "start_from": "beginning",
        }
    )
    sink = await run(provider, PollSink(polls=3, between=between))
    await provider.shutdown()

    assert keys(sink.events) == ["a", "b", "c", "d", "e"]
    assert sink.cursors[0] == {"watermark": t2, "ids": ["b", "c"]}
    assert sink.cursors[1] == {"watermark": t3, "ids": ["e"]}
    assert [r.query.get("since") for r in server.requests] == [None, t2, t3]


async def test_a_capped_poll_takes_the_oldest_and_leaves_the_rest(server: LocalServer) -> None:
    newest_first = [{"id": f"n{i}", "seq": i} for i in (5, 4, 3, 2, 1)]
    serve_list(server, newest_first)
    provider = await provider_for(
        {
            "url": server.url,
            "watermark_field": "$.seq",
            "max_items_per_poll": 2,
            "start_from": "beginning",
        }
    )
    sink = await run(provider, PollSink(polls=3))
    await provider.shutdown()
    assert keys(sink.events) == ["n2", "n1", "n4", "n3", "n5"]  # source order within a poll


async def test_secret_headers_reach_the_server_but_nothing_else(server: LocalServer) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return JSONResponse({"error": "bad token"}, status_code=401)
        return JSONResponse([{"id": "x", "echo": "ok"}])

    server.handler = handler
    config = {
        "url": server.url,
        "headers": {"Authorization": "Bearer {{secrets.api_token}}", "X-Plain": "yes"},
        "start_from": "beginning",
    }
    provider = await provider_for(config, secrets={"api_token": SECRET})
    sink = await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert keys(sink.events) == ["x"]
    assert server.requests[0].headers["x-plain"] == "yes"
    assert SECRET not in json.dumps([e.__dict__ for e in sink.events] + sink.cursors)

    provider = await provider_for(config, secrets={"api_token": SECRET + "-revoked"})
    with pytest.raises(ProviderConfigError, match="401") as caught:
        await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert_no_secret(caught.value, SECRET)

    with pytest.raises(ProviderConfigError, match="api_token") as missing:
        await provider_for(config, secrets={})
    assert_no_secret(missing.value, SECRET)


async def test_secret_names_may_use_upper_case(server: LocalServer) -> None:
    """``{{secrets.NAME}}`` as the README writes it: any case, matched exactly."""
    server.handler = lambda r: JSONResponse(
        [{"id": "x"}] if r.headers.get("x-api-key") == SECRET else []
    )
    config = {
        "url": server.url,
        "headers": {"X-Api-Key": "{{secrets.API_Token}}"},
        "start_from": "beginning",
    }
    provider = await provider_for(config, secrets={"API_Token": SECRET})
    sink = await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert keys(sink.events) == ["x"]
    # Case-sensitive, and the error says so (names only, never a value).
    with pytest.raises(ProviderConfigError, match="case-sensitive; set: api_token") as caught:
        await provider_for(config, secrets={"api_token": SECRET})
    assert_no_secret(caught.value, SECRET)


def test_a_bad_secret_name_is_refused_in_words() -> None:
    bad = {"url": "https://example.com", "headers": {"A": "{{secrets.Bad-Name}}"}}
    with pytest.raises(ValidationError, match="letters of either case, digits and _"):
        HttpPollConfig.model_validate(bad)


def assert_no_secret(exc: BaseException, secret: str) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert secret not in str(seen) and secret not in repr(seen.args)
        seen = seen.__cause__ or seen.__context__


async def test_secret_headers_do_not_follow_a_redirect_to_another_origin(
    server: LocalServer,
) -> None:
    other = LocalServer(handler=lambda _r: JSONResponse([{"id": 1}]))
    await other.start()
    server.handler = lambda _r: RedirectResponse(other.url + "/moved", status_code=302)
    try:
        provider = await provider_for(
            {
                "url": server.url,
                "headers": {"X-Api-Key": "{{secrets.key}}", "Accept": "application/json"},
                "start_from": "beginning",
            },
            secrets={"key": SECRET},
        )
        sink = await run(provider, PollSink(polls=1))
        await provider.shutdown()
    finally:
        await other.stop()
    assert keys(sink.events) == ["1"]
    assert server.requests[0].headers["x-api-key"] == SECRET
    assert "x-api-key" not in other.requests[0].headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (format_datetime(CLOCK + timedelta(minutes=2), usegmt=True), 120.0)],
)
async def test_429_honours_retry_after(server: LocalServer, header: str, expected: float) -> None:
    server.handler = lambda _r: JSONResponse({}, status_code=429, headers={"retry-after": header})
    provider = await provider_for({"url": server.url})
    with pytest.raises(ProviderTransientError) as caught:
        await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert caught.value.retry_after == expected


TRANSIENT = [(s, ProviderTransientError) for s in (500, 502, 503)]
CONFIG = [(s, ProviderConfigError) for s in (400, 401, 403, 404)]


@pytest.mark.parametrize(("status", "error"), TRANSIENT + CONFIG)
async def test_status_codes_map_to_transient_or_config_errors(
    server: LocalServer, status: int, error: type[Exception]
) -> None:
    server.handler = lambda _r: JSONResponse({"detail": "no"}, status_code=status)
    provider = await provider_for({"url": server.url + "/api/items?token=abc"})
    with pytest.raises(error, match=str(status)) as caught:
        await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert "token=abc" not in str(caught.value)


async def test_a_slow_server_is_a_transient_timeout(server: LocalServer) -> None:
    release = asyncio.Event()

    async def handler(_request: Request) -> Response:
        await release.wait()
        return JSONResponse([])

    server.handler = handler
    provider = await provider_for({"url": server.url, "timeout_seconds": 0.2})
    try:
        with pytest.raises(ProviderTransientError, match="timed out"):
            await run(provider, PollSink(polls=1))
    finally:
        release.set()
        await provider.shutdown()


@pytest.mark.parametrize(
    ("items", "body"),
    [("$.data", {"data": {"id": 1}}), ("$.data[*]", {"other": []}), ("$", {"id": 1})],
)
async def test_an_items_path_that_does_not_lead_to_a_list_is_a_config_error(
    server: LocalServer, items: str, body: Any
) -> None:
    server.handler = lambda _r: JSONResponse(body)
    provider = await provider_for({"url": server.url, "items": items})
    with pytest.raises(ProviderConfigError, match="items path"):
        await run(provider, PollSink(polls=1))
    await provider.shutdown()


async def test_a_server_that_goes_down_and_comes_back_loses_and_repeats_nothing(
    server: LocalServer,
) -> None:
    items = [{"id": "a"}, {"id": "b"}]
    serve_list(server, items)
    provider = await provider_for({"url": server.url, "start_from": "beginning"})
    first = await run(provider, PollSink(polls=1))
    assert keys(first.events) == ["a", "b"]

    await server.stop()
    items.append({"id": "c"})
    down = PollSink(polls=1, cursor=first.cursor)
    with pytest.raises(ProviderTransientError):
        await provider.run(down)
    assert down.events == [] and down.cursor == first.cursor

    await server.start()  # same port
    items.append({"id": "d"})
    again = await run(provider, PollSink(polls=2, cursor=down.cursor))
    await provider.shutdown()
    assert keys(again.events) == ["c", "d"]


async def test_a_local_url_needs_the_allowlist(server: LocalServer) -> None:
    serve_list(server, [{"id": 1}])
    closed = SourceContext("t-1", "poll", "alice")
    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        await provider_for({"url": server.url}, context=closed)
    assert server.requests == []
    provider = await provider_for({"url": server.url, "start_from": "beginning"})
    sink = await run(provider, PollSink(polls=1))
    await provider.shutdown()
    assert keys(sink.events) == ["1"]


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "ftp://example.com/x"},
        {"url": "https://example.com", "interval": "500ms"},
        {"url": "https://example.com", "surprise": True},
        {"url": "https://example.com", "headers": {"A": "{{secrets.Bad-Name}}"}},
        {"url": "https://example.com", "query": {"since": "{{cursor.watermark}}"}},
        {"url": "https://example.com", "query": {"x": "{{secrets.token}}"}},
        {"url": "https://example.com", "next_link": "$.next", "cursor_param": "c"},
        {"url": "https://example.com", "cursor_param": "c"},
        {"url": "https://example.com", "items": "$[[["},
        {"url": "https://example.com", "body": {"q": 1}},
    ],
)
def test_invalid_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpPollConfig.model_validate(bad)


def test_registered_with_user_named_secrets() -> None:
    info = get_provider("http_poll")
    assert info.source is HttpPollProvider and info.config_model is HttpPollConfig
    assert info.allows_secret("api_token") and info.allows_secret("API_TOKEN")
    assert not info.allows_secret("API-TOKEN") and not info.allows_secret("1token")
    webhook = get_provider("webhook")
    assert webhook.allows_secret("signing_secret") and not webhook.allows_secret("api_token")


def _items(*pairs: tuple[str, Any]) -> list[polling.Item]:
    return [polling.Item(key=k, watermark=w, data={"id": k}) for k, w in pairs]


def test_seen_ids_are_capped_but_never_forget_what_the_source_still_lists() -> None:
    listed = _items(*((str(i), None) for i in range(1500)))
    first = polling.select_by_ids(listed, None, limit=None)
    assert len(first.cursor["seen"]) == 1500  # all still listed: none may come back as new
    second = polling.select_by_ids(_items(("new", None)), first.cursor, limit=None)
    assert [i.key for i in second.new] == ["new"]
    assert len(second.cursor["seen"]) == polling.SEEN_IDS_CAP
    assert second.cursor["seen"][-1] == "new" and "0" not in second.cursor["seen"]


def test_watermarks_compare_as_numbers_times_or_text() -> None:
    assert polling.compare("1000", 999) == 1  # numeric text is a number, not "1000" < "999"
    assert polling.compare("2024-05-01T10:00:00+02:00", "2024-05-01T09:00:00Z") == -1
    assert polling.compare("b", "a") == 1
    with pytest.raises(ProviderConfigError, match="different kinds"):
        polling.compare("2024-05-01T10:00:00Z", 5)


def test_templates_render_the_watermark() -> None:
    values = {"cursor": 42, "cursor.watermark": 42}
    assert polling.render("since={{ cursor }}", values) == "since=42"
    body = {"filter": {"after": "{{cursor.watermark}}", "text": "id>{{cursor.watermark}}"}}
    assert polling.render_value(body, values) == {"filter": {"after": 42, "text": "id>42"}}
    assert parse_duration("1h30m").total_seconds() == 5400
