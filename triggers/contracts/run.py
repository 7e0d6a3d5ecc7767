"""``RunWorkflow``'s result and the graph's ``http_request`` activity (input and answer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeOutcome:
    """What one graph node did in a run: how many items came in and went out, the items it
    could not handle (``"<index>: <message>"``) and the side-effect calls it made."""

    node_id: str
    type: str
    items_in: int
    items_out: int
    errors: list[str] = field(default_factory=list)
    calls: int = 0


@dataclass
class RunResult:
    event_id: str
    event_key: str
    event_type: str
    trigger_id: str
    recorded_at: str
    # Graph runs only: every node in the order it ran.
    nodes: list[NodeOutcome] | None = None
    calls: int = 0


@dataclass
class HttpRequestInput:
    """One ``http_request`` node call. The activity loads the network allowlist of
    ``principal`` itself: the allowlist never rides in workflow history."""

    trigger_id: str
    node_id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout_seconds: float
    # The activity's attempts (the node's retries + 1): the last 5xx answer is returned
    # instead of retried.
    attempts: int = 1
    # The user whose allowlist applies: the one who last chose where the graph the run
    # started with sends requests; "" nobody's (public addresses only). None: a run from
    # before target principals, which uses the trigger's current one.
    principal: str | None = None


@dataclass
class HttpResponse:
    """The answer, as the next nodes see it (an item): JSON body parsed, else text; bodies
    above the cap are cut and ``truncated`` is set."""

    status: int
    headers: dict[str, str]
    body: Any
    truncated: bool = False
