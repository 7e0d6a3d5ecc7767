"""Forms generated from a provider's config JSON Schema (what ``GET /api/providers/{name}``
serves), so a new or plugin provider gets a form with no UI code, and the form's values
turned back into the JSON the API takes. Nothing here validates: the API's own models and
the trigger lifecycle do, and their errors are shown next to the field they name."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Form-encoded bodies: what one page may post at most.
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 200
# How many user-named secrets (name and value pairs) a form offers.
NAMED_SECRET_SLOTS = 3


@dataclass(frozen=True)
class Field:
    """One input of a generated form. ``kind``: text | number | integer | select | bool |
    json. ``name`` is the form field (``config.<property>``)."""

    name: str
    label: str
    kind: str
    required: bool = False
    description: str = ""
    options: tuple[str, ...] = ()
    default: str = ""
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None


@dataclass
class Values:
    """What a submitted form holds, by field name, and the errors by field name."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(found, Mapping):
            return found
    return schema


def _non_null(schema: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The schema without its ``null`` alternative, and whether null was one."""
    schema = _resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        rest = [_resolve(o, root) for o in options if o.get("type") != "null"]
        if len(rest) == 1 and len(rest) < len(options):
            merged = {**schema, **rest[0]}
            merged.pop("anyOf", None)
            merged.pop("oneOf", None)
            return merged, True
    return schema, False


def _kind(schema: Mapping[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        return "select"
    match schema.get("type"):
        case "string":
            return "text"
        case "integer":
            return "integer"
        case "number":
            return "number"
        case "boolean":
            return "bool"
    return "json"


def text_of(value: Any, kind: str) -> str:
    """A config value as its form field shows it."""
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def config_fields(schema: Mapping[str, Any], prefix: str = "config") -> list[Field]:
    """One field per top-level property of a config schema, required ones first."""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return []
    required = set(schema.get("required") or ())
    out = []
    for name, raw in props.items():
        if not isinstance(raw, Mapping):
            continue
        prop, _nullable = _non_null(raw, schema)
        kind = _kind(prop)
        options: tuple[str, ...] = ()
        if kind == "select":
            values = prop.get("enum") or [prop.get("const")]
            options = tuple(str(v) for v in values)
        out.append(
            Field(
                name=f"{prefix}.{name}",
                label=str(raw.get("title") or prop.get("title") or name),
                kind=kind,
                required=name in required,
                description=str(raw.get("description") or prop.get("description") or ""),
                options=options,
                default=text_of(raw.get("default"), kind),
                pattern=prop.get("pattern") if isinstance(prop.get("pattern"), str) else None,
                minimum=prop.get("minimum"),
                maximum=prop.get("maximum"),
                max_length=prop.get("maxLength"),
            )
        )
    out.sort(key=lambda f: not f.required)
    return out


def _value(f: Field, text: str, into: Values) -> tuple[bool, Any]:
    """The JSON value of one filled field (``False``: left empty or unreadable)."""
    if text == "":
        return False, None
    if f.kind in ("integer", "number"):
        try:
            number = int(text) if f.kind == "integer" else float(text)
        except ValueError:
            into.error(f.name, f"must be a{'n integer' if f.kind == 'integer' else ' number'}")
            return False, None
        return True, number
    if f.kind == "bool":
        if text not in ("true", "false"):
            into.error(f.name, "must be true or false")
            return False, None
        return True, text == "true"
    if f.kind == "json":
        try:
            return True, json.loads(text)
        except (ValueError, RecursionError):
            into.error(f.name, "must be JSON")
            return False, None
    return True, text


def config_of(fields: Sequence[Field], form: Values) -> dict[str, Any]:
    """The config a form's values make (empty fields left out: their defaults apply)."""
    config: dict[str, Any] = {}
    for f in fields:
        given, value = _value(f, form.values.get(f.name, "").strip(), form)
        if given:
            config[f.name.split(".", 1)[1]] = value
    return config


def parse_json(form: Values, name: str) -> tuple[bool, Any]:
    """A JSON text field (``False``: empty or not JSON, then an error is recorded)."""
    text = form.values.get(name, "").strip()
    if not text:
        return False, None
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        form.error(name, "must be JSON")
        return False, None


def field_of_loc(loc: Sequence[Any], known: Sequence[str]) -> str:
    """The form field an API error's ``loc`` names: the longest known field it starts
    with (``["body", "config", "headers", "X"]`` -> ``config.headers``), else ``""`` (the
    form as a whole)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    if parts[:1] == ["secrets"]:
        return "secrets"
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in known:
            return name
    return ""
