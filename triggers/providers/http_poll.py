"""HTTP polling provider: fetch a JSON API on an interval and emit each new item as an event.

Each poll reads every page (up to ``max_pages``) through the outbound request guard
(``triggers.infra.net``), picks the items, keeps the new ones (``triggers.providers.polling``) and
emits them; the cursor moves only once ``emit`` returned, so a crash re-reads, never skips.

Secrets (from the trigger's encrypted secrets) appear only in header templates
``{{secrets.NAME}}``; they are never logged, never put in an error message, and the headers
that carry them are dropped from a redirect to another origin.

The configuration and its validation are in ``triggers.providers.http_poll_config``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ValidationError

from triggers.core.events import Event
from triggers.infra import net
from triggers.providers import ProviderInfo, polling
from triggers.providers.base import (
    EventSink,
    ProviderConfigError,
    ProviderError,
    SourceContext,
    SourceProvider,
    event_time,
)
from triggers.providers.http_poll_config import (
    CURSOR_NAMES,
    LINK_HEADER,
    SECRET_NAME,
    SECRET_NAME_RULE,
    HttpPollConfig,
)

logger = logging.getLogger(__name__)

EVENT_TYPE = "http_poll.item"
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_USER_AGENT = "temporal-triggers/http_poll"


class HttpPollProvider(SourceProvider):
    """Polls ``url`` every ``interval``; see ``HttpPollConfig``."""

    name = "http_poll"
    Config = HttpPollConfig
    secret_pattern = SECRET_NAME
    # Where the request goes, and which headers carry a secret (and under what name).
    # Query and body take no secrets; redirects to another origin drop the secret headers.
    destination_fields = ("url", "headers")

    @classmethod
    def destinations(cls, config: BaseModel) -> dict[str, Any]:
        found = super().destinations(config)
        headers: dict[str, str] = found.get("headers") or {}
        found["headers"] = {
            name.lower(): value
            for name, value in sorted(headers.items())
            if polling.template_names(value)
        }
        return found

    secret_pattern_help = SECRET_NAME_RULE

    _config: HttpPollConfig
    _client: httpx.AsyncClient | None = None

    async def init(
        self, config: BaseModel, secrets: Mapping[str, str], context: SourceContext
    ) -> None:
        if isinstance(config, HttpPollConfig):
            self._config = config
        else:
            try:
                self._config = HttpPollConfig.model_validate(config.model_dump())
            except ValidationError as exc:
                where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
                raise ProviderConfigError(f"the http_poll config is not valid: {where}") from None
        cfg = self._config
        self._headers, self._secret_headers = _render_headers(cfg.headers, secrets)
        self._source = net.public_url(cfg.url)
        self._origin = _origin(httpx.URL(cfg.url))
        self._id = polling.FieldPath(cfg.id_field)
        self._watermark = polling.FieldPath(cfg.watermark_field) if cfg.watermark_field else None
        self._next_cursor = polling.FieldPath(cfg.next_cursor) if cfg.next_cursor else None
        await net.check_url(cfg.url, context.network_allowlist)
        self._client = net.guarded_client(
            context.network_allowlist,
            timeout=cfg.timeout_seconds,
            follow_redirects=True,
            headers={"user-agent": _USER_AGENT, "accept": "application/json"},
            event_hooks={"request": [self._drop_secrets_off_origin]},
        )

    async def shutdown(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self, sink: EventSink) -> None:
        cfg = self._config
        cursor = sink.cursor if self._cursor_fits(sink.cursor) else None
        while True:
            started = sink.now()
            items = await self._poll(cursor, sink)
            fresh = cursor is None and cfg.start_from == "now"
            limit = None if fresh else cfg.max_items_per_poll
            if self._watermark is not None:
                selection = polling.select_by_watermark(items, cursor, limit)
            else:
                selection = polling.select_by_ids(items, cursor, limit)
            new = [] if fresh else selection.new
            logger.debug("poll of %s: %d items, %d new", self._source, len(items), len(new))
            if new:
                time = event_time(sink.now())
                await sink.emit([self._event(item, time) for item in new], cursor=selection.cursor)
            elif selection.cursor != cursor:
                await sink.checkpoint(selection.cursor)
            cursor = selection.cursor
            next_at = started + timedelta(seconds=cfg.interval_seconds)
            await sink.wait(max(0.0, (next_at - sink.now()).total_seconds()), next_at=next_at)

    def _cursor_fits(self, cursor: Any) -> bool:
        """A cursor from another mode (the config changed) counts as none."""
        if self._watermark is not None:
            return polling.is_watermark_cursor(cursor)
        return polling.is_id_cursor(cursor)

    def _event(self, item: polling.Item, time: str) -> Event:
        return Event(
            id=item.key,
            key=item.key,
            source=self._source,
            type=EVENT_TYPE,
            time=time,
            data=item.data,
        )

    async def _poll(self, cursor: Any, sink: EventSink) -> list[polling.Item]:
        """Every page's items, in source order."""
        cfg = self._config
        mark = cursor.get("watermark") if isinstance(cursor, dict) else None
        values = dict.fromkeys(CURSOR_NAMES, mark)
        params = {k: v for k, t in cfg.query.items() if (v := polling.render(t, values)) != ""}
        body = polling.render_value(cfg.body, values) if cfg.body is not None else None
        url: httpx.URL = httpx.URL(cfg.url)
        page_params: dict[str, str] | None = params
        visited: set[str] = set()
        found: list[Any] = []
        for _ in range(cfg.max_pages):
            page = f"{url} {sorted((page_params or {}).items())}"
            if page in visited:
                break  # a source that links back to a page it served
            visited.add(page)
            response, data = await self._fetch(url, page_params, body, sink)
            found.extend(polling.items_at(cfg.items, data))
            if cfg.next_link:
                link = self._next_link(response, data)
                if not link:
                    break
                url, page_params = self._same_origin(urljoin(str(response.url), link)), None
            elif cfg.cursor_param and self._next_cursor:
                value = self._next_cursor.first(data)
                if value is None or value == "":
                    break
                page_params = {**params, cfg.cursor_param: str(value)}
            else:
                break
        return [
            polling.Item(
                key=polling.item_key(data, self._id, index),
                watermark=(
                    polling.item_watermark(data, self._watermark, index)
                    if self._watermark
                    else None
                ),
                data=data,
            )
            for index, data in enumerate(found)
        ]

    def _next_link(self, response: httpx.Response, data: Any) -> str | None:
        assert self._config.next_link is not None
        if self._config.next_link.lower() == LINK_HEADER:
            link = response.links.get("next", {}).get("url")
        else:
            link = polling.FieldPath(self._config.next_link).first(data)
        return link if isinstance(link, str) and link else None

    def _same_origin(self, link: str) -> httpx.URL:
        url = httpx.URL(link)
        if _origin(url) != self._origin:
            raise ProviderConfigError(
                f"{self._source}: the next page link leads to another origin "
                f"({net.public_url(url)})"
            )
        return url

    async def _fetch(
        self, url: httpx.URL, params: dict[str, str] | None, body: Any, sink: EventSink
    ) -> tuple[httpx.Response, Any]:
        assert self._client is not None, "init() was not called"
        where = net.public_url(url)
        # Errors are built inside ``except`` but raised outside it, so that no httpx error
        # (whose text may hold a header value) rides along as ``__context__``.
        failure: ProviderError | None = None
        try:
            target = url.copy_merge_params(params) if params else url  # keeps the URL's query
            request = self._client.build_request(
                self._config.method, target, json=body, headers=self._headers
            )
            response = await self._client.send(request, stream=True)
            try:
                net.raise_for_status(response, where, sink.now())
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_RESPONSE_BYTES:
                        raise ProviderConfigError(f"{where}: the response is larger than 10 MiB")
            finally:
                await response.aclose()
        except ProviderError as exc:
            failure = exc
        except (httpx.HTTPError, UnicodeError) as exc:
            failure = net.request_failure(exc, where)
            if failure is None:
                raise
        if failure is not None:
            raise failure
        try:
            return response, json.loads(bytes(content))
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        raise ProviderConfigError(f"{where}: the response is not JSON")

    async def _drop_secrets_off_origin(self, request: httpx.Request) -> None:
        """A redirect to another origin must not carry the secret headers there."""
        if _origin(request.url) != self._origin:
            for name in self._secret_headers:
                request.headers.pop(name, None)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _render_headers(
    templates: Mapping[str, str], secrets: Mapping[str, str]
) -> tuple[dict[str, str], set[str]]:
    """The headers with secrets filled in, and the names of those that carry one."""
    headers: dict[str, str] = {}
    carrying: set[str] = set()
    for name, template in templates.items():
        refs = polling.template_names(template)
        names = [ref.removeprefix("secrets.") for ref in refs]
        missing = [n for n in names if not secrets.get(n)]
        if missing:
            hint = [n for n in secrets if n.lower() == missing[0].lower()]
            also = f" (names are case-sensitive; set: {hint[0]})" if hint else ""
            raise ProviderConfigError(
                f"header {name} uses secret {missing[0]}, which is not set{also}"
            )
        value = polling.render(
            template, {ref: secrets[n] for ref, n in zip(refs, names, strict=True)}
        )
        if not value.isascii() or not value.isprintable():
            where = f"secret {names[0]}" if names else "its value"
            raise ProviderConfigError(f"header {name}: {where} has characters headers cannot hold")
        headers[name] = value
        if refs:
            carrying.add(name.lower())
    return headers, carrying


info = ProviderInfo.of(HttpPollProvider)
