"""A CPU-time budget for evaluating CEL on one event, checked at evaluation steps.

cel-python 0.5 has no cost limit of its own (nothing in ``celpy`` counts or bounds work),
so the budget is ours: a deadline on this thread's CPU clock (``time.thread_time``, so a
loaded machine does not turn slow wall-clock progress into false errors), checked

- at every evaluation step of celpy's interpreter (each AST node whose children it
  evaluates, including every element a macro such as ``all`` or ``map`` visits), through
  the evaluator that :class:`BudgetedRunner` installs, and
- at every container (and every 512 items of a large one) that ``triggers.core.cel_values``
  converts into or out of CEL, which is most of the cost for a large event.

A spent budget raises :class:`BudgetExceeded` at the next check; ``decide_run`` turns it
into the outcome ``error``. It is a ``BaseException`` so that celpy's ``except Exception``
handlers (one of them logs the function's arguments, i.e. event values, at ERROR before
re-raising) let it through untouched. Full collections of the garbage collector do not
count (up to ``GC_CREDIT_BUDGETS`` budgets): they cost in proportion to the process's whole
heap, not to the event.

Why not ``sys.settrace``: measured here (``benchmarks/cel_conditions.py``), any Python
trace function, even one that does nothing, makes a typical condition 2.2x as slow (0.93 ms
-> 2.05 ms), and one that reads the CPU clock on every call 5.5x (5.2 ms); the checks here
cost ~3% (``decide_run`` with a budget against without), and the evaluator without a budget
is as fast as celpy's own (-2% to +3% over runs). They also leave coverage tools and
debuggers alone, and several threads each keep their own budget (a ``ContextVar``: per
thread, and copied by ``asyncio.to_thread``).

What they cannot interrupt is one celpy operation that loops in Python without evaluating
a sub-expression, such as ``==`` between two large lists (~33 ms for the 33,000 ints of a
199 KB body): its cost is bounded by the size of the event (bounded where it enters), and
the check after it fires.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import celpy
import lark
from celpy.celtypes import Value
from celpy.evaluation import Context, Evaluator, Result

# How often (wall clock) a check reads the thread's CPU clock: reading it is a system call
# (~0.6 us), an evaluation step can be shorter. CPU time never runs ahead of wall time, so
# the check fires at most this long (plus one step) after the budget is spent.
CHECK_INTERVAL_SECONDS = 0.0005
# Full collections of the garbage collector (generation 2) do not count against a budget,
# up to this many budgets in all. A full collection costs in proportion to the whole
# process's heap, not to the event (~110 ms in the test process, 450,000 objects), and one
# that happened to run during a small event's evaluation failed it. Young collections do
# count: they cost in proportion to what the evaluation allocated. The cap bounds an
# evaluation that allocates so much that full collections keep coming.
GC_CREDIT_BUDGETS = 3


class BudgetExceeded(BaseException):
    """The evaluation's budget is spent (raised at a check; never escapes ``decide_run``)."""


class Budget:
    """A deadline on this thread's CPU clock, ``seconds`` from now."""

    __slots__ = ("seconds", "deadline", "next_check", "gc_credit", "gc_started")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds
        self.next_check = 0.0
        self.gc_credit = GC_CREDIT_BUDGETS * seconds
        self.gc_started: float | None = None

    def poll(self) -> None:
        """Raise :class:`BudgetExceeded` if the budget is spent (cheap between clock reads).

        Raises:
            BudgetExceeded: this thread has used its CPU time.
        """
        if time.perf_counter() >= self.next_check:
            if time.thread_time() > self.deadline:
                raise BudgetExceeded
            self.next_check = time.perf_counter() + CHECK_INTERVAL_SECONDS


_CURRENT: ContextVar[Budget | None] = ContextVar("cel_budget", default=None)


def _collected(phase: str, info: dict[str, int]) -> None:
    """``gc.callbacks``: a collection runs in the thread whose allocation triggered it, so
    a full one's pause is that thread's; move the deadline of its budget by the pause."""
    if info["generation"] != 2:
        return
    budget = _CURRENT.get()
    if budget is None:
        return
    if phase == "start":
        budget.gc_started = time.thread_time()
    elif budget.gc_started is not None:
        pause = min(time.thread_time() - budget.gc_started, budget.gc_credit)
        budget.gc_credit -= pause
        budget.deadline += pause
        budget.gc_started = None


gc.callbacks.append(_collected)


def current() -> Budget | None:
    """The budget of the evaluation running in this thread, if any."""
    return _CURRENT.get()


@contextmanager
def cpu_budget(seconds: float | None) -> Iterator[Budget | None]:
    """Evaluate the block under a budget of ``seconds`` of this thread's CPU time (None: no
    budget, and no clock is read: deterministic, as workflow code must be)."""
    budget = None if seconds is None else Budget(seconds)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


_children = lark.visitors.Interpreter.visit_children
_perf_counter = time.perf_counter


class _BudgetedEvaluator(Evaluator):
    budget: Budget | None = None

    def visit_children(self, tree: lark.Tree[Any]) -> list[Result]:
        budget = self.budget
        if budget is not None and _perf_counter() >= budget.next_check:
            budget.poll()
        # celpy's own override, inlined: chaining to it through super() made a typical
        # condition ~3x slower when measured (CPython 3.11), calling the base does not.
        self.level += 1
        values: list[Result] = _children(self, tree)
        self.level -= 1
        return values

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        # A macro (all, exists, map, filter) evaluates its body with a sub-evaluator.
        nested = _BudgetedEvaluator(ast, activation=self.activation)
        nested.budget = self.budget
        return nested


class BudgetedRunner(celpy.InterpretedRunner):
    """celpy's interpreter, checking the current :func:`cpu_budget` at each step."""

    def evaluate(self, context: Context) -> Value:
        evaluator = _BudgetedEvaluator(ast=self.ast, activation=self.new_activation())
        evaluator.budget = _CURRENT.get()
        return evaluator.evaluate(context)
