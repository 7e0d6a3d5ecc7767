"""The run graph's node types: their pydantic config, one model per ``type``.

Every string called an *expression* below is CEL (see ``triggers.core.conditions``) over
``event``, ``trigger`` and ``item`` (the item the node is working on). A fixed text is a
quoted CEL string: ``"url": "'https://example.com/hook'"``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from celpy import celtypes
from pydantic import BaseModel, ConfigDict, Field, field_validator

from triggers.core.cel_errors import EvaluationError
from triggers.core.cel_values import json_type
from triggers.core.conditions import compile_expression

NODE_ID = r"^[A-Za-z0-9_.:-]+$"
MAX_DELAY_SECONDS = 365 * 24 * 3600.0


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=NODE_ID)

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        """Every CEL expression in this node's config, with its path inside the node."""
        return []


def evaluate(expr: str, activation: Mapping[str, Any]) -> Any:
    return compile_expression(expr).evaluate(activation)


def _string(expr: str, activation: Mapping[str, Any], what: str) -> str:
    value = evaluate(expr, activation)
    if not isinstance(value, str):
        raise EvaluationError(f"{what} must give a string, not {json_type(value)}")
    return value


class _Test(_Node):
    condition: str

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        return [(("condition",), self.condition)]

    def test(self, activation: Mapping[str, Any]) -> bool:
        result = evaluate(self.condition, activation)
        if not isinstance(result, bool):
            raise EvaluationError(f"condition must give a bool, not {json_type(result)}")
        return result


class FilterNode(_Test):
    """Keeps the items for which ``condition`` is true; drops the others."""

    type: Literal["filter"]


class IfNode(_Test):
    """Sends each item along its ``true`` or ``false`` edges, by ``condition``."""

    type: Literal["if"]


class SetNode(_Node):
    """Assigns fields of the item: ``{"field": "expression"}``.

    A dotted field (``"repo.name"``) assigns inside nested maps, creating them. Every
    expression sees the item as it came in, so the order of assignments does not matter.
    """

    type: Literal["set"]
    values: dict[str, str] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _fields(cls, values: dict[str, str]) -> dict[str, str]:
        for name in values:
            if not name or "" in name.split("."):
                raise ValueError("field names are non-empty, dot-separated names")
        return values

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        return [(("values", name), expr) for name, expr in self.values.items()]

    def apply(self, item: Any, activation: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``item`` with the values assigned (``item`` itself is left alone)."""
        if not isinstance(item, dict):
            raise EvaluationError(f"set needs a map item, not {json_type(item)}")
        values = {name: evaluate(expr, activation) for name, expr in self.values.items()}
        out = copy.deepcopy(item)
        for name, value in values.items():
            *parents, last = name.split(".")
            target = out
            for part in parents:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise EvaluationError(f"set {name!r}: {part!r} is not a map")
            target[last] = value
        return out


class HttpRequestNode(_Node):
    """An HTTP call, made by an activity. ``body`` is one expression (its value is the
    body) or a map of field to expression (a JSON object body); ``None`` sends none."""

    type: Literal["http_request"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, str] | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    retries: int = Field(default=0, ge=0, le=10)

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        found: list[tuple[tuple[str, ...], str]] = [(("url",), self.url)]
        found += [(("headers", name), expr) for name, expr in self.headers.items()]
        if isinstance(self.body, str):
            found.append((("body",), self.body))
        elif self.body is not None:
            found += [(("body", name), expr) for name, expr in self.body.items()]
        return found

    def call_args(self, activation: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(self.body, dict):
            body: Any = {name: evaluate(expr, activation) for name, expr in self.body.items()}
        else:
            body = None if self.body is None else evaluate(self.body, activation)
        headers = {
            name: _string(expr, activation, f"header {name}") for name, expr in self.headers.items()
        }
        return {
            "method": self.method,
            "url": _string(self.url, activation, "url"),
            "headers": headers,
            "body": body,
            "timeout_seconds": self.timeout_seconds,
            "retries": self.retries,
        }


class StartWorkflowNode(_Node):
    """Starts a workflow of the user's with ``input`` (an expression, the item by default)."""

    type: Literal["start_workflow"]
    workflow_type: str = Field(min_length=1, max_length=200)
    task_queue: str | None = Field(default=None, min_length=1, max_length=200)
    input: str = "item"

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        return [(("input",), self.input)]

    def call_args(self, activation: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "workflow_type": self.workflow_type,
            "task_queue": self.task_queue,
            "input": evaluate(self.input, activation),
        }


class DelayNode(_Node):
    """Waits (a durable timer in the run). ``duration``: seconds, or a CEL duration text
    such as ``"90s"``, ``"1h30m"``, ``"1.5h"``; normalised to seconds. Like every side
    effect it is planned per item; all items wait the same time, so they wait together."""

    type: Literal["delay"]
    duration: float

    @field_validator("duration", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return celtypes.DurationType(value).total_seconds()
            except (ValueError, TypeError):
                raise ValueError(
                    "duration must be seconds or a text like '90s' or '1h30m'"
                ) from None
        return value

    @field_validator("duration")
    @classmethod
    def _range(cls, value: float) -> float:
        if not 0 < value <= MAX_DELAY_SECONDS:
            raise ValueError(f"duration must be above 0 and at most {MAX_DELAY_SECONDS:.0f}s")
        return value

    def call_args(self, activation: Mapping[str, Any]) -> dict[str, Any]:
        return {"seconds": self.duration}


class LogNode(_Node):
    """Writes ``message`` (an expression giving a string) to the run's log."""

    type: Literal["log"]
    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"

    def expressions(self) -> list[tuple[tuple[str, ...], str]]:
        return [(("message",), self.message)]

    def call_args(self, activation: Mapping[str, Any]) -> dict[str, Any]:
        return {"level": self.level, "message": _string(self.message, activation, "message")}


SideEffectNode = HttpRequestNode | StartWorkflowNode | DelayNode | LogNode
Node = Annotated[
    FilterNode | IfNode | SetNode | HttpRequestNode | StartWorkflowNode | DelayNode | LogNode,
    Field(discriminator="type"),
]
NODE_TYPES = ("filter", "if", "set", "http_request", "start_workflow", "delay", "log")
# Nodes whose effect is outside the plan: the real run performs them.
SIDE_EFFECT_TYPES = frozenset({"http_request", "start_workflow", "delay", "log"})
