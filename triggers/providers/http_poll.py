"""HTTP polling provider: fetch a JSON API on an interval and emit each new item as an event.

Each poll reads every page (up to ``max_pages``) through the outbound request guard
(``triggers.infra.net``), picks the items, keeps the new ones (``triggers.providers.polling``) and
emits them; the cursor moves only once ``emit`` returned, so a crash re-reads, never skips.

Secrets (from the trigger's encrypted secrets) appear only in header templates
``{{secrets.NAME}}``; they are never logged, never put in an error message, and the headers
that carry them are dropped from a redirect to another origin.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from triggers.core.durations import DURATION_PATTERN, parse_duration
from triggers.core.events import Event
from triggers.infra import net
from triggers.providers import polling
from triggers.providers.base import (
    EventSink,
    ProviderConfigError,
    ProviderError,
    ProviderTransientError,
    SourceContext,
    SourceProvider,
    event_time,
)

logger = logging.getLogger(__name__)

# Secret names as templates reference them, matched exactly (case-sensitive).
SECRET_NAME = r"[A-Za-z][A-Za-z0-9_]{0,63}"
SECRET_NAME_RULE = (
    "letters of either case, digits and _, starting with a letter, at most 64 characters "
    "(case-sensitive: {{secrets.Token}} uses the secret Token)"
)
EVENT_TYPE = "http_poll.item"
LINK_HEADER = "header:link"
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
CURSOR_NAMES = ("cursor", "cursor.watermark")
_USER_AGENT = "temporal-triggers/http_poll"


class HttpPollConfig(BaseModel):
    """Configuration of an HTTP polling trigger. Secrets referenced by header templates go in
    the trigger's ``secrets`` under the same names (see ``SECRET_NAME_RULE``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="The http(s) URL to poll; its query string is kept.",
        # Stricter than the validator (no IPv6 literals, no user info), as a pattern can be.
        json_schema_extra={
            "pattern": "^[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][!-~]*)?$"
        },
    )
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; values may use {{secrets.NAME}}, "
        "e.g. 'Authorization': 'Bearer {{secrets.token}}', with the secret under the same "
        f"name in the trigger's secrets. NAME: {SECRET_NAME_RULE}.",
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        description="Query parameters added to the URL's; values may use {{cursor}} or "
        "{{cursor.watermark}} (the last watermark). A parameter that renders empty is left out.",
    )
    body: dict[str, Any] | None = Field(
        default=None,
        description="JSON body (POST); string values may use {{cursor.watermark}}, a value "
        "that is only that template keeps the watermark's type (null before the first one).",
    )
    items: str = Field(
        default="$",
        description="JSONPath of the items in the response: '$' when it is a list, "
        "'$.data[*]' or '$.data' for a list under 'data'.",
    )
    id_field: str = Field(
        default="id",
        description="Each item's id, the event key: a dotted path ('id', 'meta.id') or a "
        "JSONPath ('$.meta.id').",
    )
    watermark_field: str | None = Field(
        default=None,
        description="A field that grows with new items (number, ISO time or text): new items "
        "are those above the last one seen. Without it, new items are unseen ids.",
    )
    next_link: str | None = Field(
        default=None,
        description="Pagination by link: JSONPath of the next page's URL in the body, or "
        "'header:link' for an RFC 8288 Link header with rel=next. Same origin only.",
    )
    cursor_param: str | None = Field(
        default=None, description="Pagination by cursor: the query parameter that takes it."
    )
    next_cursor: str | None = Field(
        default=None, description="Pagination by cursor: JSONPath of the next cursor value."
    )
    max_pages: int = Field(default=20, ge=1, le=1000, description="Pages read per poll.")
    interval: str = Field(
        default="60s",
        description="Time between polls, e.g. '30s' (>= 1s).",
        json_schema_extra={"pattern": DURATION_PATTERN},
    )
    start_from: Literal["now", "beginning"] = Field(
        default="now",
        description="'now': the first poll records what exists without emitting it; "
        "'beginning': the first poll emits every item.",
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="Per request (connect, read, write)."
    )
    max_items_per_poll: int = Field(
        default=1000, ge=1, le=10_000, description="New items emitted per poll; more wait."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            net.url_host(url)
        except ProviderConfigError as exc:
            raise ValueError(str(exc)) from None
        if polling.template_names(url):
            raise ValueError("the URL takes no templates; use query or headers")
        return url

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, interval: str) -> str:
        if parse_duration(interval).total_seconds() < 1:
            raise ValueError("the interval must be at least 1s")
        return interval

    @field_validator("items", "next_cursor")
    @classmethod
    def _check_jsonpath(cls, path: str | None) -> str | None:
        if path is not None:
            polling.compile_path(path)
        return path

    @field_validator("id_field", "watermark_field")
    @classmethod
    def _check_field(cls, path: str | None) -> str | None:
        if path is not None:
            polling.FieldPath(path)
        return path

    @field_validator("next_link")
    @classmethod
    def _check_next_link(cls, path: str | None) -> str | None:
        if path is not None and path.lower() != LINK_HEADER:
            polling.compile_path(path)
        return path

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            for ref in polling.template_names(value):
                if ref.startswith("secrets.") and not re.fullmatch(SECRET_NAME, ref[8:]):
                    raise ValueError(
                        f"header {name}: {{{{{ref}}}}}: a secret name is {SECRET_NAME_RULE}"
                    )
                if not ref.startswith("secrets."):
                    raise ValueError(f"header {name}: only {{{{secrets.NAME}}}} may be used")
        return headers

    @model_validator(mode="after")
    def _check_combinations(self) -> HttpPollConfig:
        texts = [*self.query.values(), *polling.strings_in(self.body)]
        for ref in (ref for text in texts for ref in polling.template_names(text)):
            if ref not in CURSOR_NAMES:
                raise ValueError(f"query and body may use {{{{cursor.watermark}}}}, not {ref!r}")
            if self.watermark_field is None:
                raise ValueError("{{cursor.watermark}} needs watermark_field")
        if self.body is not None and self.method != "POST":
            raise ValueError("a body needs method POST")
        if self.next_link and (self.cursor_param or self.next_cursor):
            raise ValueError("paginate by next_link or by cursor_param/next_cursor, not both")
        if bool(self.cursor_param) != bool(self.next_cursor):
            raise ValueError("cursor_param and next_cursor go together")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval).total_seconds()


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
        except httpx.TimeoutException:
            failure = ProviderTransientError(f"{where}: timed out")
        except httpx.TooManyRedirects:
            failure = ProviderConfigError(f"{where}: too many redirects")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            failure = ProviderConfigError(f"{where}: redirected to an unsupported URL")
        except (httpx.LocalProtocolError, UnicodeError):
            failure = ProviderConfigError(f"{where}: the request could not be sent")
        except httpx.TransportError as exc:
            failure = ProviderTransientError(f"{where}: {type(exc).__name__}")
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
