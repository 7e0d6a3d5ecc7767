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
  ``workflow.unsafe.imports_passed_through()``, like ``triggers.events``.
- Compile errors: both give a position. ``celpy`` gives line and column as attributes; we
  build the message from the parser's own text (lark's "Unexpected token ...", with the
  expected terminals sorted, since lark keeps them in a set).
- Speed: the cost, 10-20x slower than Rust. On this 2-core machine (under a load of ~5)
  ``event.data.ref == "refs/heads/main"`` evaluates in ~0.4 ms; a typical GitHub condition
  (ref, a header, ``exists`` over five commits) compiles in ~1.1-1.6 ms and evaluates in
  ~2.8-3.5 ms (Rust: ~0.15 ms each); ``benchmarks/cel_conditions.py`` measures it.
  Compiled programs are cached and the event is converted once per plan. A trigger
  workflow starts at most a few hundred runs a second, but one workflow task that
  evaluates hundreds of events adds up: keep that well under the SDK's 2 s deadlock limit.

The activation (what an expression sees):

- ``event``: a map of the CloudEvents attributes ``id``, ``key``, ``source``, ``type``,
  ``specversion``, ``datacontenttype``, ``subject`` (``null`` when absent), ``time``,
  plus ``data`` (any JSON, as is) and ``headers`` (a map; names lower-cased, as the webhook
  route stores them, so ``event.headers["x-github-event"]`` works for every source).
- ``event.time`` is a CEL ``timestamp`` when it parses as ISO 8601 (a time without an
  offset is taken as UTC), so ``event.time > timestamp("2024-01-01T00:00:00Z")`` and
  ``event.time.getHours()`` work; a time that does not parse stays a string.
- ``trigger``: ``id``, ``name``, ``provider``.
- graph nodes also see ``item`` (see ``triggers.graph``).

Missing fields are errors, not false: ``event.data.missing == "x"`` fails with
"no such member", and a condition that fails is the outcome ``error`` (the event is dropped
and the error recorded with its id). Write ``has(event.data.x) && event.data.x == "y"`` to
treat a missing field as false. CEL's logic operators absorb errors where the answer does
not depend on them: ``event.data.missing == "x" || true`` is true.

Results come back as plain JSON-ready Python values: ``bool``, ``int``, ``float``, ``str``,
``None``, ``list``, ``dict``; timestamps become RFC 3339 strings in UTC, durations
``"<seconds>s"`` strings, bytes base64 text.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import celpy
import lark.exceptions
import lark.lexer
from celpy import celtypes
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import CELEvalError

from triggers.events import Event

MAX_EXPRESSION_LENGTH = 10_000

ConditionResult = Literal["passed", "dropped", "error"]


class ExpressionError(ValueError):
    """A CEL expression that does not compile. ``position`` is ``(line, column)``, 1-based."""

    def __init__(self, message: str, position: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        line, column = self.position
        return f"line {line}, column {column}: {self.message}"


class EvaluationError(Exception):
    """An expression failed on its input (a missing field, a type mismatch, ...).

    The message names the problem and where in the expression it happened, never the
    values it was evaluated on (event data can hold personal data or secrets).
    """


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
_ENV = celpy.Environment()
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
            raise EvaluationError(_eval_message(err)) from None
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
        raise ExpressionError(_parse_message(err), position) from None
    except RecursionError:
        raise ExpressionError("expression nests too deeply") from None
    return Compiled(expr, program)


def _terminals(names: Iterable[str]) -> str:
    """Lark's terminal names as a user reads them: ``'{'``, ``'||'``, ``IDENT``; sorted,
    since lark keeps them in a set (its order changes from process to process)."""
    parser = CELParser.CEL_PARSER
    shown = set()
    for name in names:
        try:
            pattern = parser.get_terminal(name).pattern if parser else None
        except KeyError:
            pattern = None
        literal = isinstance(pattern, lark.lexer.PatternStr)
        shown.add(repr(pattern.value) if literal and pattern else name.removesuffix("_LIT"))
    return ", ".join(sorted(shown))


def _parse_message(err: CELParseError) -> str:
    cause = err.__context__
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        what = "end of expression" if token.type == "$END" else f"token {str(token)!r}"
        return f"Syntax error: unexpected {what}; expected one of: {_terminals(cause.expected)}"
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        expected = _terminals(cause.allowed)
        return f"Syntax error: no token matches {cause.char!r}; expected one of: {expected}"
    first = str(cause or err).strip().splitlines()
    return f"Syntax error: {first[0] if first else 'invalid expression'}"


# celpy's messages can embed the values they failed on, as reprs like StringType('...').
_VALUE_REPR = re.compile(r"\b([A-Z][A-Za-z]*)Type\(")
_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+?)(?:Type)?'>")
_RULE_TOKEN = re.compile(r"Token\('RULE', '(\w+)'\)")


def _redact(text: str) -> str:
    """Replace every value repr (``StringType('secret')``, ``MapType({...})``) by its type."""
    out, i = [], 0
    while (m := _VALUE_REPR.search(text, i)) is not None:
        out.append(text[i : m.start()] + f"<{m.group(1).lower()}>")
        depth, j, quote = 1, m.end(), ""
        while j < len(text) and depth:
            c = text[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def _eval_message(err: CELEvalError) -> str:
    text = str(err.args[0]) if err.args else "evaluation error"
    text = text.split(" (in activation", 1)[0]
    text = _RULE_TOKEN.sub(r"\1", _CLASS_REPR.sub(lambda m: m.group(1).lower(), text))
    text = _redact(text)
    # celpy places most errors on the whole expression (1:1), which says nothing.
    if err.line is not None and err.column is not None and (err.line, err.column) != (1, 1):
        text = f"{text} (at line {err.line}, column {err.column})"
    return text


# -- values in and out --------------------------------------------------------------------

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


def to_cel(value: Any) -> Any:
    """Convert a plain Python/JSON value to CEL (values already converted pass as they are).

    Raises:
        EvaluationError: a value JSON cannot hold (a set, an object, ...).
    """
    if value is None or isinstance(value, _CEL_SCALARS):
        return value
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, Mapping):
        return celtypes.MapType({to_cel(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    if isinstance(value, dt.datetime):
        return celtypes.TimestampType(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    raise EvaluationError(f"a {type(value).__name__} cannot be given to an expression")


def to_python(value: Any) -> Any:
    """Convert a CEL result to a plain JSON-ready Python value (documented above).

    Raises:
        EvaluationError: the result holds an error (``{"a": 1/0}``) or a non-JSON value.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, CELEvalError):
        raise EvaluationError(_eval_message(value))
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
        return {str(to_python(k)): to_python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_python(v) for v in value]
    raise EvaluationError(f"an expression result of type {type(value).__name__} is not JSON")


def _rfc3339(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return (
        utc.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else "")
        + "Z"
    )


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
    try:
        result = compiled.evaluate(event_activation(event, trigger))
    except EvaluationError as err:
        return ConditionOutcome("error", str(err), event.id)
    if not isinstance(result, bool):
        return ConditionOutcome(
            "error", f"condition must give a bool, not {json_type(result)}", event.id
        )
    return ConditionOutcome("passed" if result else "dropped", None, event.id)


def json_type(value: Any) -> str:
    """The CEL name of a plain value's type, for messages (never the value itself)."""
    names = {type(None): "null", str: "string", int: "int", float: "double"}
    names |= {list: "list", dict: "map"}
    return names.get(type(value), type(value).__name__)


# -- decisions shared by the trigger workflow and the dry run -----------------------------


def decide(condition: str | None, event: Event, trigger: TriggerInfo) -> ConditionOutcome:
    """The trigger's condition (its source text) on one event: what the trigger workflow
    decides, and what the dry run shows. No condition passes every event; an expression
    that no longer compiles is an ``error``, like a failed evaluation."""
    if not condition:
        return ConditionOutcome("passed", None, event.id)
    try:
        compiled = compile_expression(condition)
    except Exception as exc:
        return ConditionOutcome("error", str(exc), event.id)
    return evaluate_condition(compiled, event, trigger)


@dataclass(frozen=True)
class MappedInput:
    """A run's input built by a target's ``input`` mapping, or why it could not be."""

    value: Any = None
    error: str | None = None


def map_input(expression: str, event: Event, trigger: TriggerInfo) -> MappedInput:
    """Evaluate a target's ``input`` mapping (CEL over ``event`` and ``trigger``) into a
    plain JSON value; failures come back as ``error`` (never with the event's values)."""
    try:
        value = compile_expression(expression).evaluate(event_activation(event, trigger))
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
    condition: str | None, input_mapping: str | None, event: Event, trigger: TriggerInfo
) -> RunDecision:
    """:func:`decide`, then the input mapping for events that pass. Pure and deterministic:
    the trigger workflow calls it before starting a run, the dry run to show what would."""
    outcome = decide(condition, event, trigger)
    if outcome.result != "passed" or not input_mapping:
        return RunDecision(outcome)
    mapped = map_input(input_mapping, event, trigger)
    if mapped.error is not None:
        return RunDecision(ConditionOutcome("error", mapped.error, event.id))
    return RunDecision(outcome, True, mapped.value)
