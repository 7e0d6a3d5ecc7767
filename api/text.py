"""What the API stores must be storable: the one check every string of a request passes.

PostgreSQL refuses NUL characters in text and JSON; neither database, nor Temporal, nor a
JSON response can carry a lone surrogate (``"\\ud800"`` is valid JSON but not Unicode text);
non-finite numbers are not JSON; and deeply nested JSON exhausts the stack of whatever walks
it next. Each is refused where it enters, with a 422 whose ``loc`` ends at the offending
value (``["body", "config", "headers", "X-Token"]``) and whose message never quotes it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# Far deeper than any config, graph or sample event needs; far shallower than the stack.
MAX_JSON_DEPTH = 32
# The rule as the OpenAPI states it for every string a request carries (``api.openapi``).
NO_NUL_PATTERN = "^[^\\u0000]*$"
# ... and for values that must have something besides whitespace (secrets, allowlist entries).
NON_BLANK_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
# The error type of a refused value inside JSON; ``ctx["path"]`` says where it is.
JSON_VALUE_ERROR = "json_value"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it contains a lone surrogate)"
    return None


def check_text(value: Any) -> Any:
    """A before-validator: strings must be storable; other types go on to the type check."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError("text", problem)
    return value


def _value_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (no NaN or Infinity)"
    return None


def check_json(value: Any) -> Any:
    """A before-validator for free-form JSON: every key and string storable, numbers finite,
    at most ``MAX_JSON_DEPTH`` levels. Iterative, so depth never costs stack."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list) and len(path) >= MAX_JSON_DEPTH:
            raise PydanticCustomError(
                JSON_VALUE_ERROR,
                f"nests deeper than {MAX_JSON_DEPTH} levels",
                {"path": list(path)},
            )
        if isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    raise PydanticCustomError(
                        JSON_VALUE_ERROR, f"key {problem}", {"path": list(path)}
                    )
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
        else:
            problem = _value_problem(item)
            if problem is not None:
                raise PydanticCustomError(JSON_VALUE_ERROR, problem, {"path": list(path)})
    return value


SafeStr = Annotated[str, BeforeValidator(check_text)]
SafeJson = Annotated[dict[str, Any], BeforeValidator(check_json)]
SafeAny = Annotated[Any, BeforeValidator(check_json)]
