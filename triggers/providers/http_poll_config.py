"""The configuration of an HTTP polling trigger (``HttpPollConfig``) and its rules.

What a user writes and the API validates: the URL, the header templates that carry secrets
(``{{secrets.NAME}}``), the query and body templates that carry the cursor, and the paging
options. The provider that acts on it is ``triggers.providers.http_poll``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from triggers.core.durations import DURATION_PATTERN, parse_duration
from triggers.infra import net
from triggers.providers import polling
from triggers.providers.base import ProviderConfigError

# Secret names as templates reference them, matched exactly (case-sensitive).
SECRET_NAME = r"[A-Za-z][A-Za-z0-9_]{0,63}"
SECRET_NAME_RULE = (
    "letters of either case, digits and _, starting with a letter, at most 64 characters "
    "(case-sensitive: {{secrets.Token}} uses the secret Token)"
)
LINK_HEADER = "header:link"
CURSOR_NAMES = ("cursor", "cursor.watermark")


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
