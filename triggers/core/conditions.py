"""CEL expressions: compile once at create/update time, evaluate deterministically on events.

Library: ``cel-python`` (module ``celpy``), chosen over ``common-expression-language``
(Rust bindings) after checking both (0.5.0 and 0.10.0):

- **Determinism decided it.** The Rust bindings iterate CEL maps in a per-process random
  order (Rust's seeded hash maps): ``{"a":1,"b":2,"c":3}`` comes back in a different key
  order in each process, and ``event.data.labels.map(k, k)[0]`` gives different answers in
  different processes. A workflow replayed on another worker would then decide differently.
  ``celpy`` keeps Python dict order, so the same input gives the same output everywhere.
- Sandbox: pure Python (plus ``lark``, ``pendulum`` and ``google-re2`` underneath); it does
  no I/O and reads no clock. Workflows import this module through
  ``workflow.unsafe.imports_passed_through()``, like ``triggers.core.events``.
- Compile errors: both give a position. ``celpy`` gives line and column as attributes; we
  build the message from the parser's own text (lark's "Unexpected token ...", with the
  expected terminals sorted, since lark keeps them in a set).
- Speed: the cost, 10-20x slower than Rust. On this 2-core machine (under a load of ~5)
  ``event.data.ref == "refs/heads/main"`` evaluates in ~0.4 ms; a typical GitHub condition
  (ref, a header, ``exists`` over five commits) compiles in ~1.1-1.6 ms and evaluates in
  ~2.8-3.5 ms (Rust: ~0.15 ms each); ``benchmarks/cel_conditions.py`` measures it.
  Compiled programs are cached and the event is converted once per plan (and once for a
  condition and its mapping). Converting a large body costs more than a typical condition:
  ~8-10 ms for 199 KB of JSON ints; at the webhook limit of 256 KiB, 6-65 ms by shape
  (long strings cheapest, 87,000 empty objects the costliest per byte).
- Budget: ``decide_run(..., budget_seconds=...)`` bounds one event's evaluation by CPU time
  (``triggers.core.cel_budget``; ``EVALUATION_BUDGET_SECONDS``, 100 ms, where events enter): an
  evaluation over budget is the outcome ``error``. Without a budget it reads no clock, as
  workflow code must not; the workflow reads the verdict decided at intake instead.

The activation (what an expression sees):

- ``event``: a map of the CloudEvents attributes ``id``, ``key``, ``source``, ``type``,
  ``specversion``, ``datacontenttype``, ``subject`` (``null`` when absent), ``time``,
  plus ``data`` (any JSON, as is) and ``headers`` (a map; names lower-cased, as the webhook
  route stores them, so ``event.headers["x-github-event"]`` works for every source).
- ``event.time`` is a CEL ``timestamp`` when it parses as ISO 8601 (a time without an
  offset is taken as UTC), so ``event.time > timestamp("2024-01-01T00:00:00Z")`` and
  ``event.time.getHours()`` work; a time that does not parse stays a string.
- ``trigger``: ``id``, ``name``, ``provider``.
- graph nodes also see ``item`` (see ``triggers.core.graph``).

Missing fields are errors, not false: ``event.data.missing == "x"`` fails with
"no such member", and a condition that fails is the outcome ``error`` (the event is dropped
and the error recorded with its id). Write ``has(event.data.x) && event.data.x == "y"`` to
treat a missing field as false. CEL's logic operators absorb errors where the answer does
not depend on them: ``event.data.missing == "x" || true`` is true.

Results come back as plain JSON-ready Python values (``triggers.core.cel_values``, which
converts values into and out of CEL); the two errors and their safe messages are in
``triggers.core.cel_errors``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from triggers.core.cel_budget import BudgetedRunner, BudgetExceeded, cpu_budget
from triggers.core.cel_errors import EvaluationError, ExpressionError, eval_message, parse_message
from triggers.core.cel_values import json_type, to_cel, to_python
from triggers.core.events import Event

MAX_EXPRESSION_LENGTH = 10_000
# The CPU time one event's evaluation (its activation, the condition, then the input
# mapping) may use where the event enters (``decide_run(..., budget_seconds=...)``). A typical
# condition costs ~1-3 ms here, and converting a webhook body of the largest size (256 KiB)
# into CEL 6-65 ms by its shape, so 100 ms passes every body the webhook route accepts with
# a trivial condition (50 ms would not), while a pathological condition holds a worker
# thread for 0.1 s instead of seconds (``all`` over 199 KB of ints: ~2.5 s).
EVALUATION_BUDGET_SECONDS = 0.1

ConditionResult = Literal["passed", "dropped", "error"]


@dataclass(frozen=True)
class TriggerInfo:
    """What an expression may know about its trigger."""

    id: str
    name: str
    provider: str


@dataclass(frozen=True)
class ConditionOutcome:
    """``passed``: start a run; ``dropped``: the condition was false; ``error``: it failed
    (the event is dropped and ``error`` says why)."""

    result: ConditionResult
    error: str | None = None
    event_id: str | None = None


# Creating the environment raises the recursion limit to 2500 (celpy's, for CEL's nesting).
# The runner checks the evaluation budget (``triggers.core.cel_budget``) when one is set.
_ENV = celpy.Environment(runner_class=BudgetedRunner)
# celpy's parser keeps the text being parsed on a shared object: one compile at a time.
_COMPILE_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class Compiled:
    """A compiled expression; evaluate it as often as needed (it holds no state)."""

    expression: str
    _program: celpy.Runner

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """Evaluate on ``activation`` (names to plain Python/JSON values or values made by
        ``to_cel``) and return a plain Python value.

        Raises:
            EvaluationError: the expression failed, or its result is not representable.
        """
        context = {name: to_cel(value) for name, value in activation.items()}
        try:
            result = self._program.evaluate(context)
        except CELEvalError as err:
            raise EvaluationError(eval_message(err)) from None
        except RecursionError:
            raise EvaluationError("expression nests too deeply") from None
        except Exception as err:  # celpy lets some Python errors through: same treatment
            raise EvaluationError(f"evaluation failed: {type(err).__name__}") from None
        return to_python(result)


@lru_cache(maxsize=1024)
def compile_expression(expr: str) -> Compiled:
    """Compile a CEL expression; the same string always gives the same ``Compiled``.

    Raises:
        ExpressionError: with the parser's message and ``(line, column)`` where it knows it.
    """
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if not expr.strip():
        raise ExpressionError("expression is empty")
    try:
        with _COMPILE_LOCK:
            ast = _ENV.compile(expr)
            program = _ENV.program(ast)
    except CELParseError as err:
        position = (err.line, err.column) if err.line and err.column else None
        raise ExpressionError(parse_message(err), position) from None
    except RecursionError:
        raise ExpressionError("expression nests too deeply") from None
    return Compiled(expr, program)


def _event_time(text: str) -> Any:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return celtypes.StringType(text)
    return to_cel(parsed)


def event_activation(event: Event, trigger: TriggerInfo) -> dict[str, Any]:
    """The names ``event`` and ``trigger``, converted to CEL once (reuse it across nodes).

    Raises:
        EvaluationError: the event's data holds a value JSON cannot.
    """
    attrs: dict[str, Any] = {
        "id": event.id,
        "key": event.key,
        "source": event.source,
        "type": event.type,
        "specversion": event.specversion,
        "datacontenttype": event.datacontenttype,
        "subject": event.subject,
        "data": event.data,
        "headers": {str(k).lower(): v for k, v in event.headers.items()},
    }
    converted = to_cel(attrs)
    converted[celtypes.StringType("time")] = _event_time(event.time)
    return {
        "event": converted,
        "trigger": to_cel({"id": trigger.id, "name": trigger.name, "provider": trigger.provider}),
    }


def evaluate_condition(
    compiled: Compiled | None, event: Event, trigger: TriggerInfo
) -> ConditionOutcome:
    """Decide whether ``event`` starts a run. No condition passes every event.

    A result that is not a bool is an ``error``, like a failed evaluation: a condition
    that answers ``"yes"`` or ``1`` is a mistake to surface, not a truthy value to guess at.
    """
    if compiled is None:
        return ConditionOutcome("passed", None, event.id)
    return _outcome(compiled, lambda: event_activation(event, trigger), event.id)


def _outcome(
    compiled: Compiled, activation: Callable[[], dict[str, Any]], event_id: str
) -> ConditionOutcome:
    try:
        result = compiled.evaluate(activation())
    except EvaluationError as err:
        return ConditionOutcome("error", str(err), event_id)
    if not isinstance(result, bool):
        return ConditionOutcome(
            "error", f"condition must give a bool, not {json_type(result)}", event_id
        )
    return ConditionOutcome("passed" if result else "dropped", None, event_id)


# -- decisions shared by the trigger workflow, the intake and the dry run -------------------


def decide(condition: str | None, event: Event, trigger: TriggerInfo) -> ConditionOutcome:
    """The trigger's condition (its source text) on one event: what the trigger workflow
    decides, and what the dry run shows. No condition passes every event; an expression
    that no longer compiles is an ``error``, like a failed evaluation."""
    return decide_run(condition, None, event, trigger).outcome


@dataclass(frozen=True)
class MappedInput:
    """A run's input built by a target's ``input`` mapping, or why it could not be."""

    value: Any = None
    error: str | None = None


def map_input(expression: str, event: Event, trigger: TriggerInfo) -> MappedInput:
    """Evaluate a target's ``input`` mapping (CEL over ``event`` and ``trigger``) into a
    plain JSON value; failures come back as ``error`` (never with the event's values)."""
    return _mapped(_compiled(expression), lambda: event_activation(event, trigger))


def _compiled(expression: str) -> Compiled | Exception:
    try:
        return compile_expression(expression)
    except Exception as exc:
        return exc


def _mapped(
    compiled: Compiled | Exception, activation: Callable[[], dict[str, Any]]
) -> MappedInput:
    try:
        if isinstance(compiled, Exception):
            raise compiled
        value = compiled.evaluate(activation())
    except (ExpressionError, EvaluationError) as err:
        return MappedInput(None, f"input mapping: {err}")
    except Exception as exc:
        return MappedInput(None, f"input mapping failed: {type(exc).__name__}")
    return MappedInput(value, None)


@dataclass(frozen=True)
class RunDecision:
    """Whether an event starts a run, and with which input.

    ``outcome`` is the condition's outcome, except that an input mapping that fails turns
    a ``passed`` into an ``error`` (the event is dropped and the error recorded, like a
    failing condition). ``mapped`` says whether ``input`` came from a mapping; without one
    the run gets the whole event.
    """

    outcome: ConditionOutcome
    mapped: bool = False
    input: Any = None

    @property
    def would_start(self) -> bool:
        return self.outcome.result == "passed"


def decide_run(
    condition: str | None,
    input_mapping: str | None,
    event: Event,
    trigger: TriggerInfo,
    *,
    budget_seconds: float | None = None,
) -> RunDecision:
    """:func:`decide`, then the input mapping for events that pass (on the same activation).

    Without ``budget_seconds``, pure and deterministic (no clock is read): what the trigger
    workflow decides for an event that came without a verdict. With it (where events enter,
    and the dry run), converting the event, the condition and the mapping together may use
    that much of this thread's CPU time; an event that needs more is the outcome ``error``
    ("condition exceeded its evaluation budget (100 ms CPU)"), and only that event.
    """
    if not condition and not input_mapping:
        return RunDecision(ConditionOutcome("passed", None, event.id))
    # Compiled before the budget starts: compiling is cached per expression and bounded by
    # MAX_EXPRESSION_LENGTH; the first event after a restart must not pay for it.
    compiled_condition = _compiled(condition) if condition else None
    compiled_mapping = _compiled(input_mapping) if input_mapping else None
    activation = cache(lambda: event_activation(event, trigger))
    stage = "condition" if condition else "input mapping"
    with cpu_budget(budget_seconds) as budget:
        try:
            if isinstance(compiled_condition, Exception):
                return RunDecision(ConditionOutcome("error", str(compiled_condition), event.id))
            outcome = ConditionOutcome("passed", None, event.id)
            if compiled_condition is not None:
                outcome = _outcome(compiled_condition, activation, event.id)
            if outcome.result != "passed" or compiled_mapping is None:
                return RunDecision(outcome)
            stage = "input mapping"
            mapped = _mapped(compiled_mapping, activation)
        except BudgetExceeded:
            spent = f"{budget.seconds * 1000:g} ms CPU" if budget else "CPU"
            error = f"{stage} exceeded its evaluation budget ({spent})"
            return RunDecision(ConditionOutcome("error", error, event.id))
    if mapped.error is not None:
        return RunDecision(ConditionOutcome("error", mapped.error, event.id))
    return RunDecision(outcome, True, mapped.value)
