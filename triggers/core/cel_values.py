"""Values into and out of CEL (``celpy``'s types), within the evaluation budget.

Into CEL (:func:`to_cel`): plain JSON types take a direct path; ``datetime`` becomes a
``timestamp`` (naive ones taken as UTC), ``timedelta`` a ``duration``, ``bytes`` bytes.

Out of CEL (:func:`to_python`), results come back as plain JSON-ready Python values:
``bool``, ``int``, ``float``, ``str``, ``None``, ``list``, ``dict``; timestamps become
RFC 3339 strings in UTC, durations ``"<seconds>s"`` strings, bytes base64 text.

Under an evaluation budget (``triggers.core.cel_budget``), large lists and maps are
converted in chunks with a budget check before each.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

from triggers.core.cel_budget import Budget, current
from triggers.core.cel_errors import EvaluationError, eval_message

_CEL_SCALARS = (
    celtypes.BoolType,
    celtypes.IntType,
    celtypes.UintType,
    celtypes.DoubleType,
    celtypes.StringType,
    celtypes.BytesType,
    celtypes.TimestampType,
    celtypes.DurationType,
    celtypes.ListType,
    celtypes.MapType,
)


_INT64 = (-(2**63), 2**63 - 1)
# Large lists and maps are converted in chunks of this many items, with a budget check
# before each: a converted item costs ~0.3-2 us, a chunk well under a millisecond.
_CHUNK = 512


def to_cel(value: Any) -> Any:
    """Convert a plain Python/JSON value to CEL (values already converted pass as they are).

    Plain JSON types take a direct path (celpy's constructors cost ~6 us an int, which made
    a 199 KB list of ints take ~200 ms, now ~10 ms); under an evaluation budget, large
    values are converted in chunks with a check before each.

    Raises:
        EvaluationError: a value JSON cannot hold (a set, an object, an integer outside
            int64), or one that nests too deeply.
    """
    try:
        return _to_cel(value, current())
    except RecursionError:
        raise EvaluationError("a value nests too deeply to be given to an expression") from None


def _to_cel(value: Any, budget: Budget | None) -> Any:
    kind = type(value)
    if kind is str:
        return str.__new__(celtypes.StringType, value)
    if kind is int:
        if _INT64[0] <= value <= _INT64[1]:
            return int.__new__(celtypes.IntType, value)
        raise EvaluationError("an integer outside int64 cannot be given to an expression")
    if kind is dict:
        return _map_to_cel(value, budget)
    if kind is list:
        return _list_of(value, _to_cel, budget)
    if kind is float:
        return float.__new__(celtypes.DoubleType, value)
    if kind is bool:
        return int.__new__(celtypes.BoolType, value)
    if value is None or isinstance(value, _CEL_SCALARS):
        return value
    if isinstance(value, bool | int):  # subclasses (IntEnum, ...): as their plain value
        return _to_cel(int(value), budget)
    if isinstance(value, float):
        return _to_cel(float(value), budget)
    if isinstance(value, str):
        return _to_cel(str(value), budget)
    if isinstance(value, Mapping):
        return _map_to_cel(value, budget)
    if isinstance(value, list | tuple):
        return _list_of(value, _to_cel, budget)
    if isinstance(value, dt.datetime):
        return celtypes.TimestampType(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    raise EvaluationError(f"a {type(value).__name__} cannot be given to an expression")


def _map_to_cel(value: Mapping[Any, Any], budget: Budget | None) -> celtypes.MapType:
    out = celtypes.MapType()
    for i, (k, v) in enumerate(value.items()):
        if budget is not None and not i % _CHUNK:
            budget.poll()
        out[_to_cel(k, budget)] = _to_cel(v, budget)
    return out


def _list_of(
    items: Sequence[Any], convert: Callable[[Any, Budget | None], Any], budget: Budget | None
) -> list[Any]:
    """``items`` converted one by one, as a CEL list when converting to CEL."""
    out: list[Any] = celtypes.ListType() if convert is _to_cel else []
    for start in range(0, len(items), _CHUNK):
        if budget is not None:
            budget.poll()
        out.extend([convert(v, budget) for v in items[start : start + _CHUNK]])
    return out


def to_python(value: Any) -> Any:
    """Convert a CEL result to a plain JSON-ready Python value (see the module docstring).

    Raises:
        EvaluationError: the result holds an error (``{"a": 1/0}``) or a non-JSON value, or
            nests too deeply.
    """
    try:
        return _to_python(value, current())
    except RecursionError:
        raise EvaluationError("an expression result nests too deeply") from None


def _to_python(value: Any, budget: Budget | None) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, CELEvalError):
        raise EvaluationError(eval_message(value))
    if isinstance(value, bool | celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.DoubleType | float):
        return float(value)
    if isinstance(value, celtypes.TimestampType):
        return _rfc3339(value)
    if isinstance(value, celtypes.DurationType):
        return f"{value.total_seconds():.9f}".rstrip("0").rstrip(".") + "s"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if budget is not None and not i % _CHUNK:
                budget.poll()
            out[str(_to_python(k, budget))] = _to_python(v, budget)
        return out
    if isinstance(value, list | tuple):
        return _list_of(value, _to_python, budget)
    raise EvaluationError(f"an expression result of type {type(value).__name__} is not JSON")


def _rfc3339(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return (
        utc.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else "")
        + "Z"
    )


def json_type(value: Any) -> str:
    """The CEL name of a plain value's type, for messages (never the value itself)."""
    names = {type(None): "null", str: "string", int: "int", float: "double"}
    names |= {list: "list", dict: "map"}
    return names.get(type(value), type(value).__name__)
