"""CEL conditions: outcomes, the activation, compile errors with positions, determinism, and
evaluation inside Temporal's workflow sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.exceptions import RequestValidationError
from temporalio.client import Client
from temporalio.worker import Worker

from api.validation import clean_errors, expression_or_422
from tests.condition_workflows import ConditionProbe, ProbeInput, ProbeResult
from triggers.core.cel_errors import EvaluationError, ExpressionError
from triggers.core.conditions import (
    MAX_EXPRESSION_LENGTH,
    ConditionOutcome,
    TriggerInfo,
    compile_expression,
    evaluate_condition,
    event_activation,
)
from triggers.core.events import Event

TRIGGER = TriggerInfo(id="t-1", name="deploys", provider="webhook")
PUSH = Event(
    id="delivery-1",
    key="delivery-1",
    source="github",
    type="push",
    time="2024-05-01T12:30:00.250+02:00",
    data={"ref": "refs/heads/main", "commits": [{"id": "c1"}, {"id": "c2"}], "secret": "hunter2"},
    subject="acme/app",
    headers={"X-GitHub-Event": "push", "Content-Type": "application/json"},
)
ROOT = Path(__file__).resolve().parent.parent


def outcome(expr: str, event: Event = PUSH) -> ConditionOutcome:
    return evaluate_condition(compile_expression(expr), event, TRIGGER)


def test_github_push_to_main_passes_and_other_branches_drop() -> None:
    cond = 'event.data.ref == "refs/heads/main"'
    assert outcome(cond) == ConditionOutcome("passed", None, "delivery-1")
    dev = replace(PUSH, id="delivery-2", data={"ref": "refs/heads/dev"})
    assert outcome(cond, dev) == ConditionOutcome("dropped", None, "delivery-2")


def test_no_condition_passes_every_event() -> None:
    assert evaluate_condition(None, PUSH, TRIGGER) == ConditionOutcome("passed", None, "delivery-1")


def test_headers_are_a_map_with_lower_cased_names() -> None:
    assert outcome('event.headers["x-github-event"] == "push"').result == "passed"
    assert outcome('"content-type" in event.headers').result == "passed"
    assert outcome('"X-GitHub-Event" in event.headers').result == "dropped"


def test_cloudevents_attributes_and_trigger_are_visible() -> None:
    expr = (
        'event.id == "delivery-1" && event.key == "delivery-1" && event.source == "github"'
        ' && event.type == "push" && event.subject == "acme/app" && event.specversion == "1.0"'
        ' && event.datacontenttype == "application/json" && trigger.id == "t-1"'
        ' && trigger.name == "deploys" && trigger.provider == "webhook"'
        " && size(event.data.commits) == 2 && event.data.commits[1].id == 'c2'"
    )
    assert outcome(expr).result == "passed"
    no_subject = replace(PUSH, subject=None)
    assert outcome("event.subject == null", no_subject).result == "passed"


def test_time_is_a_cel_timestamp_and_an_unparseable_time_stays_a_string() -> None:
    # 12:30:00.250+02:00 is 10:30:00.25 UTC; CEL's accessors default to UTC.
    assert outcome('event.time == timestamp("2024-05-01T10:30:00.25Z")').result == "passed"
    assert outcome("event.time.getHours() == 10 && event.time.getMinutes() == 30").result == (
        "passed"
    )
    assert compile_expression("event.time").evaluate(event_activation(PUSH, TRIGGER)) == (
        "2024-05-01T10:30:00.25Z"
    )
    odd = replace(PUSH, time="yesterday")
    assert outcome('event.time == "yesterday"', odd).result == "passed"
    naive = replace(PUSH, time="2024-05-01T12:30:00")  # no offset: taken as UTC
    assert outcome('event.time == timestamp("2024-05-01T12:30:00Z")', naive).result == "passed"


def test_a_result_that_is_not_a_bool_is_an_error() -> None:
    assert outcome("event.data.ref") == ConditionOutcome(
        "error", "condition must give a bool, not string", "delivery-1"
    )
    assert outcome("size(event.data.commits)").error == "condition must give a bool, not int"
    assert outcome("event.subject").error == "condition must give a bool, not string"


def test_a_missing_field_is_an_error_unless_guarded_with_has() -> None:
    assert outcome('event.data.missing == "x"') == ConditionOutcome(
        "error", "no such member in mapping: 'missing'", "delivery-1"
    )
    assert outcome('has(event.data.missing) && event.data.missing == "x"').result == "dropped"
    # CEL's logic absorbs an error where the answer does not depend on it.
    assert outcome('event.data.missing == "x" || true').result == "passed"
    assert outcome('event.headers["x-nope"] == "1"').error == "no such key"


def test_evaluation_errors_never_carry_the_values() -> None:
    messages = {
        "event.data.secret.foo": "<string> with type: 'string' does not support field selection",
        "event.data.commits[0][event.data.secret]": "no such key",
        "event.data.secret > 1": "found no matching overload for relation_gt applied to "
        "'(string, int)'",
        "event.data.secret + 1 == 2": "found no matching overload for addition_add applied to "
        "'(string, int)'",
    }
    for expr, expected in messages.items():
        got = outcome(expr)
        assert (got.result, got.error) == ("error", expected), expr
    assert "hunter2" not in outcome("undeclared_name").error  # type: ignore[operator]
    assert outcome("undeclared_name").error == "undeclared reference to 'undeclared_name'"


def test_evaluate_returns_plain_json_values() -> None:
    expr = (
        '{"n": 1, "x": 2.5, "ok": true, "none": null, "b": b"hi", "d": duration("90.5s"),'
        ' "t": timestamp("2024-01-01T00:00:00Z") + duration("1h"), "l": [1u, "s"],'
        ' "refs": event.data.commits.map(c, c.id)}'
    )
    got = compile_expression(expr).evaluate(event_activation(PUSH, TRIGGER))
    assert got == {
        "n": 1,
        "x": 2.5,
        "ok": True,
        "none": None,
        "b": "aGk=",
        "d": "90.5s",
        "t": "2024-01-01T01:00:00Z",
        "l": [1, "s"],
        "refs": ["c1", "c2"],
    }
    assert type(got["ok"]) is bool and type(got["n"]) is int and type(got["refs"][0]) is str
    assert compile_expression("item.a + 1").evaluate({"item": {"a": 41}}) == 42
    with pytest.raises(EvaluationError, match="^modulus or divide by zero"):
        compile_expression('{"a": 1 / 0}').evaluate({})
    with pytest.raises(EvaluationError, match="^a set cannot be given to an expression$"):
        compile_expression("x").evaluate({"x": {1, 2}})


def test_data_that_is_not_json_is_an_error_outcome() -> None:
    odd = replace(PUSH, data={"s": {1, 2}})
    assert outcome("true", odd) == ConditionOutcome(
        "error", "a set cannot be given to an expression", "delivery-1"
    )


def test_syntax_errors_give_the_parsers_message_and_position() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression('event.data.ref == "refs/heads/main" &&')
    err = caught.value
    assert err.position == (1, 37)
    assert err.message.startswith("Syntax error: unexpected end of expression; expected one of: ")
    assert "IDENT" in err.message and "'('" in err.message
    assert str(err) == f"line 1, column 37: {err.message}"

    with pytest.raises(ExpressionError) as caught:
        compile_expression('event.type == "push" &&\n  event.data.ref ==* "x"')
    assert caught.value.position == (2, 20)
    assert caught.value.message.startswith("Syntax error: unexpected token '*'; expected one of:")

    with pytest.raises(ExpressionError) as caught:
        compile_expression("event.type # 1")
    assert caught.value.position == (1, 12)
    assert caught.value.message.startswith("Syntax error: no token matches '#'; expected one of:")
    assert "'=='" in caught.value.message and "'&&'" in caught.value.message


def test_empty_and_oversized_expressions_are_rejected() -> None:
    for blank in ("", "   \n"):
        with pytest.raises(ExpressionError) as caught:
            compile_expression(blank)
        assert (caught.value.message, caught.value.position) == ("expression is empty", None)
    with pytest.raises(ExpressionError, match=f"longer than {MAX_EXPRESSION_LENGTH}"):
        compile_expression("1 + " * MAX_EXPRESSION_LENGTH + "1")


def test_the_same_expression_compiles_once() -> None:
    assert compile_expression("event.type == 'x'") is compile_expression("event.type == 'x'")
    assert compile_expression("event.type == 'x'") is not compile_expression("event.type=='x'")


def test_invalid_condition_answers_422_with_message_and_position() -> None:
    with pytest.raises(RequestValidationError) as caught:
        expression_or_422("event.data.ref == ")
    [detail] = clean_errors(caught.value.errors())
    assert detail["loc"] == ["body", "condition"]
    assert detail["type"] == "cel_syntax"
    assert detail["msg"].startswith("line 1, column 16: Syntax error: unexpected end of expression")
    assert expression_or_422("true") is compile_expression("true")


PROBE = """
import json, sys
from triggers.core.cel_errors import ExpressionError
from triggers.core.conditions import TriggerInfo, compile_expression, evaluate_condition
from triggers.core.events import Event
ev = Event(id="e", key="k", source="s", type="t", time="2024-01-01T00:00:00Z",
           data={"labels": {"zeta": 1, "alpha": 2, "mid": 3, "beta": 4}})
act_expr = compile_expression(
    '{"keys": event.data.labels.map(k, k), "first": event.data.labels.map(k, k)[0],'
    ' "m": {"c": 1, "a": 2, "b": 3}}'
)
from triggers.core.conditions import event_activation
out = act_expr.evaluate(event_activation(ev, TriggerInfo("t", "n", "p")))
try:
    compile_expression("a # b")
except ExpressionError as err:
    msg = err.message
print(json.dumps([out, list(out["m"]), msg]))
"""


def test_results_and_messages_are_identical_across_processes() -> None:
    """Map order and error texts must not depend on the process (hash seeds): a replay on
    another worker has to decide the same way. The Rust CEL bindings fail exactly this."""
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    out, map_order, _msg = json.loads(outputs.pop())
    assert out["keys"] == ["zeta", "alpha", "mid", "beta"]
    assert out["first"] == "zeta"
    assert map_order == ["c", "a", "b"]


async def test_conditions_and_plans_evaluate_inside_the_workflow_sandbox(client: Client) -> None:
    queue = f"cel-{uuid.uuid4().hex[:8]}"
    graph = {
        "nodes": [
            {"id": "main", "type": "filter", "condition": 'item.ref == "refs/heads/main"'},
            {"id": "say", "type": "log", "message": '"push by " + trigger.name'},
        ],
        "edges": [{"source": "main", "target": "say"}],
    }
    cond = 'event.headers["x-github-event"] == "push" && event.time.getHours() == 10'
    async with Worker(client, task_queue=queue, workflows=[ConditionProbe]):
        got = await client.execute_workflow(
            ConditionProbe.run,
            ProbeInput(event=PUSH, condition=cond, graph=graph),
            id=f"probe-{queue}",
            task_queue=queue,
            result_type=ProbeResult,
        )
        failed = await client.execute_workflow(
            ConditionProbe.run,
            ProbeInput(event=PUSH, condition="event.data.nope", graph=graph),
            id=f"probe-error-{queue}",
            task_queue=queue,
            result_type=ProbeResult,
        )
    assert got == ProbeResult("passed", None, [{"level": "info", "message": "push by probe"}])
    assert failed == ProbeResult("error", "no such member in mapping: 'nope'", [])
