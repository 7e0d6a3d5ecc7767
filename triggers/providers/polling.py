"""Which polled items are new, and the cursor that remembers what was seen. No I/O.

Two ways to tell new from old, chosen by the trigger's config:

- **by watermark** (a sortable field: a number, an ISO 8601 time, or text): new items have a
  watermark above the cursor's, or equal to it with an id not yet seen at that watermark
  (ties are common: many items share a second). Items that arrive late, below the
  watermark, are never seen. Cursor: ``{"watermark": <value>, "ids": [ids at it]}``.
- **by id**: new items have an id not in the recently seen ids the cursor keeps. Cursor:
  ``{"seen": [ids, oldest first]}``, at most ``max(SEEN_IDS_CAP, ids in the last poll)``,
  so an item still listed by the source is never forgotten and emitted again.

A limit on new items per poll leaves the rest out of the cursor, so they come next poll.
Also here: the small languages of polling configs (JSONPath or dotted field paths,
``{{name}}`` templates, ``"30s"`` durations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonpath

from triggers.providers.base import ProviderConfigError

SEEN_IDS_CAP = 1000

_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


@dataclass(frozen=True)
class Item:
    """One item of a poll: its id (the event key), its watermark (or None) and its data."""

    key: str
    watermark: Any
    data: Any


@dataclass(frozen=True)
class Selection:
    """The new items, in source order, and the cursor to record once they are delivered."""

    new: list[Item]
    cursor: dict[str, Any]


class FieldPath:
    """A JSONPath (``$.meta.id``) or a dotted path (``meta.id``, ``tags.0``) into an item."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._jsonpath = compile_path(text) if text.startswith("$") else None
        self._parts = None if self._jsonpath else text.split(".")

    def first(self, data: Any) -> Any:
        """The first value at the path, or None."""
        if self._jsonpath is not None:
            found = self._jsonpath.findall(data)
            return found[0] if found else None
        assert self._parts is not None
        for part in self._parts:
            if isinstance(data, Mapping):
                data = data.get(part)
            elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
                data = data[int(part)]
            else:
                return None
        return data


def compile_path(text: str) -> jsonpath.JSONPath | jsonpath.CompoundJSONPath:
    """Compile a JSONPath; ``ValueError`` with the parser's message when it is invalid."""
    try:
        return jsonpath.compile(text)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"invalid JSONPath {text!r}: {str(exc).splitlines()[0]}") from None


def items_at(path: str, body: Any) -> list[Any]:
    """The items ``path`` selects in a response body.

    A singular path (``$``, ``$.data``) must lead to a list, whose elements are the items; a
    path like ``$.data[*]`` needs ``$.data`` to be a list; other paths (filters, ``..``)
    select the items themselves. A null list counts as empty.
    """
    compiled = compile_path(path)
    canonical = str(compiled)
    if isinstance(compiled, jsonpath.JSONPath) and compiled.singular_query():
        found = compiled.findall(body)
        if not found:
            raise ProviderConfigError(f"the items path {path} matched nothing in the response")
        if found[0] is None:
            return []
        if not isinstance(found[0], list):
            kind = type(found[0]).__name__
            raise ProviderConfigError(f"the items path {path} leads to a {kind}, not a list")
        return list(found[0])
    if canonical.endswith("[*]") and canonical != "$[*]":
        items_at(canonical[: -len("[*]")], body)  # the list itself must be there
    elif canonical == "$[*]" and not isinstance(body, list):
        raise ProviderConfigError(f"the items path {path} needs a list, the response is not one")
    return list(compiled.findall(body))


def item_key(data: Any, path: FieldPath, index: int) -> str:
    value = path.first(data)
    if value is None or isinstance(value, bool | dict | list):
        raise ProviderConfigError(
            f"item {index} has no usable id at {path.text} (a string or number is needed)"
        )
    return str(value)


def item_watermark(data: Any, path: FieldPath, index: int) -> Any:
    value = path.first(data)
    if value is None or isinstance(value, bool | dict | list):
        raise ProviderConfigError(
            f"item {index} has no usable watermark at {path.text} (a number, time or text)"
        )
    return value


def _order(value: Any) -> tuple[str, Any]:
    """What watermarks compare by: numbers (also numeric text), ISO times, else text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number", Decimal(str(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return "number", Decimal(text)
        if _DATE.match(text):
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                return "text", value
            return "time", when if when.tzinfo else when.replace(tzinfo=UTC)
        return "text", value
    raise ProviderConfigError(f"a watermark must be a number, a time or text, not {value!r}")


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as watermark ``a`` sorts before, with or after ``b``."""
    (kind_a, key_a), (kind_b, key_b) = _order(a), _order(b)
    if kind_a != kind_b:
        raise ProviderConfigError(
            f"watermarks of different kinds cannot be compared ({kind_a} and {kind_b})"
        )
    return int(key_a > key_b) - int(key_a < key_b)


def _unique(items: Sequence[Item]) -> list[Item]:
    """First occurrence of each id: pages can shift while they are read."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            out.append(item)
    return out


def select_by_ids(items: Sequence[Item], cursor: Any, limit: int | None) -> Selection:
    """New = not among the recently seen ids. ``cursor`` None: everything is new."""
    previous: list[str] = list(cursor["seen"]) if is_id_cursor(cursor) else []
    known = set(previous)
    listed = _unique(items)
    new = [item for item in listed if item.key not in known]
    held = {item.key for item in new[limit:]} if limit is not None else set()
    current = [item.key for item in listed if item.key not in held]
    current_set = set(current)
    seen = [key for key in previous if key not in current_set] + current
    keep = max(SEEN_IDS_CAP, len(current))
    return Selection(
        new=[item for item in new if item.key not in held], cursor={"seen": seen[-keep:]}
    )


def select_by_watermark(items: Sequence[Item], cursor: Any, limit: int | None) -> Selection:
    """New = above the watermark, or at it with an unseen id. ``cursor`` None: all new."""
    mark: Any = cursor["watermark"] if is_watermark_cursor(cursor) else None
    at_mark: set[str] = set(cursor["ids"]) if mark is not None else set()
    new = []
    for item in _unique(items):
        order = 1 if mark is None else compare(item.watermark, mark)
        if order > 0 or (order == 0 and item.key not in at_mark):
            new.append(item)
    if limit is not None and len(new) > limit:
        # Deliver the oldest first, so the watermark never jumps over what was held back.
        oldest = _sorted_by_watermark(new)[:limit]
        kept = {item.key for item in oldest}
        new = [item for item in new if item.key in kept]
    if not new:
        return Selection(new=[], cursor=watermark_cursor(mark, at_mark))
    top = _sorted_by_watermark(new)[-1].watermark
    if mark is None or compare(top, mark) > 0:
        mark, at_mark = top, set()
    at_mark |= {item.key for item in new if compare(item.watermark, mark) == 0}
    return Selection(new=new, cursor=watermark_cursor(mark, at_mark))


def _sorted_by_watermark(items: Sequence[Item]) -> list[Item]:
    kinds = {_order(item.watermark)[0] for item in items}
    if len(kinds) > 1:
        raise ProviderConfigError(
            f"watermarks of different kinds cannot be compared ({', '.join(sorted(kinds))})"
        )
    return sorted(items, key=lambda item: _order(item.watermark)[1])


def watermark_cursor(mark: Any, ids: set[str]) -> dict[str, Any]:
    return {"watermark": mark, "ids": sorted(ids)}


def is_id_cursor(cursor: Any) -> bool:
    return isinstance(cursor, dict) and isinstance(cursor.get("seen"), list)


def is_watermark_cursor(cursor: Any) -> bool:
    return (
        isinstance(cursor, dict) and "watermark" in cursor and isinstance(cursor.get("ids"), list)
    )


def template_names(text: str) -> list[str]:
    """The names a string references as ``{{name}}``."""
    return TEMPLATE.findall(text)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Replace each ``{{name}}`` (known to ``values``) with its text; None renders empty."""

    def sub(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return "" if value is None else str(value)

    return TEMPLATE.sub(sub, text)


def render_value(value: Any, values: Mapping[str, Any]) -> Any:
    """Render templates inside a JSON value; a string that is one template keeps the type."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value)
        return values[whole.group(1)] if whole else render(value, values)
    if isinstance(value, dict):
        return {k: render_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, values) for v in value]
    return value


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON value (where templates may be)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []
