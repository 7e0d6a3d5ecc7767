"""CEL's two failures, and their messages made safe to show.

``ExpressionError``: an expression that does not compile, with the parser's own message
(lark's "Unexpected token ...", the expected terminals sorted, since lark keeps them in a
set) and ``(line, column)``. ``EvaluationError``: an expression that failed on its input;
its message comes from celpy's, with every value it quotes replaced by the value's type
(event data can hold personal data or secrets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import lark.exceptions
import lark.lexer
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import CELEvalError


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


def parse_message(err: CELParseError) -> str:
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


def eval_message(err: CELEvalError) -> str:
    text = str(err.args[0]) if err.args else "evaluation error"
    text = text.split(" (in activation", 1)[0]
    text = _RULE_TOKEN.sub(r"\1", _CLASS_REPR.sub(lambda m: m.group(1).lower(), text))
    text = _redact(text)
    # celpy places most errors on the whole expression (1:1), which says nothing.
    if err.line is not None and err.column is not None and (err.line, err.column) != (1, 1):
        text = f"{text} (at line {err.line}, column {err.column})"
    return text
