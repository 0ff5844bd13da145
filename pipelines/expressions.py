"""Azure Pipelines expressions, as the service evaluates them.

One language serves the template expressions (`${{ eq(parameters.service, 'gateway') }}`, resolved
when a run is compiled) and the conditions of stages, jobs and steps (`and(succeeded(),
startsWith(variables['Build.SourceBranch'], 'refs/heads/main'))`, resolved as the run goes). This
module evaluates the part of it the project's pipelines use, with the service's rules: string
comparisons ignore case, `eq` converts its right side to the type of its left, `and` and `or` stop
at the first deciding argument, and a missing property is null.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

Value: TypeAlias = "str | bool | float | int | list[Value] | dict[str, Value] | None"
Function: TypeAlias = Callable[..., "Value"]


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated, with the expression in the message."""


@dataclass(frozen=True)
class _Literal:
    value: Value


@dataclass(frozen=True)
class _Name:
    name: str


@dataclass(frozen=True)
class _Member:
    target: _Node
    key: _Node


@dataclass(frozen=True)
class _Call:
    function: str
    arguments: tuple[_Node, ...]


_Node: TypeAlias = "_Literal | _Name | _Member | _Call"

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punctuation>[()\[\],.])
    )""",
    re.VERBOSE,
)
_KEYWORDS: dict[str, Value] = {"true": True, "false": False, "null": None}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise ExpressionError(f"unexpected {text[position:]!r} in {text!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._next = 0

    def parse(self) -> _Node:
        node = self._expression()
        if self._next != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._next][1]!r} in {self._text!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (expected is not None and token[1] != expected):
            wanted = repr(expected) if expected else "more"
            raise ExpressionError(f"expected {wanted} in {self._text!r}")
        self._next += 1
        return token

    def _expression(self) -> _Node:
        node = self._primary()
        while (token := self._peek()) is not None and token[1] in (".", "["):
            self._take()
            if token[1] == ".":
                kind, name = self._peek() or ("end", "")
                self._next += 1
                if kind != "name":
                    raise ExpressionError(f"expected a property name after '.' in {self._text!r}")
                node = _Member(node, _Literal(name))
            else:
                node = _Member(node, self._expression())
                self._take("]")
        return node

    def _primary(self) -> _Node:
        kind, text = self._take()
        if kind == "string":
            return _Literal(text[1:-1].replace("''", "'"))
        if kind == "number":
            return _Literal(float(text) if "." in text else int(text))
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r} in {self._text!r}")
        if (token := self._peek()) is not None and token[1] == "(":
            self._take()
            arguments: list[_Node] = []
            while (token := self._peek()) is not None and token[1] != ")":
                arguments.append(self._expression())
                if (token := self._peek()) is not None and token[1] == ",":
                    self._take()
                elif token is None or token[1] != ")":
                    break  # not a list of arguments: the ')' below reports it
            self._take(")")
            return _Call(text, tuple(arguments))
        if text in _KEYWORDS:
            return _Literal(_KEYWORDS[text])
        return _Name(text)


def to_bool(value: Value) -> bool:
    """The service's truth: null, false, 0, '' are false; everything else (even 'false') is true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return value is not None


def to_str(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return "Array" if isinstance(value, list) else "Object"
    return str(value)


def _to_number(value: Value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def _compare(left: Value, right: Value) -> int | None:
    """-1, 0 or 1 with the right side converted to the left's type; None when incomparable."""
    if isinstance(left, str):
        a, b = left.casefold(), to_str(right).casefold()
        return (a > b) - (a < b)
    if isinstance(left, bool):
        return int(left) - int(to_bool(right))
    if isinstance(left, int | float):
        number = _to_number(right)
        return None if math.isnan(number) else (left > number) - (left < number)
    if left is None:
        return 0 if right is None or right == "" else None
    return 0 if left is right else None


def _equal(left: Value, right: Value) -> bool:
    return _compare(left, right) == 0


def _ordered(check: Callable[[int], bool]) -> Function:
    def compare(left: Value, right: Value) -> bool:
        order = _compare(left, right)
        return order is not None and check(order)

    return compare


def _join(separator: Value, items: Value) -> str:
    if isinstance(items, list):
        return to_str(separator).join(to_str(item) for item in items)
    return to_str(items)


def _length(value: Value) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ExpressionError(f"length() of {to_str(value)!r}")


def _format(template: Value, *arguments: Value) -> str:
    def argument(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        return to_str(arguments[int(match.group(1))])

    return re.sub(r"\{\{|\}\}|\{(\d+)\}", argument, to_str(template))


def _contains(haystack: Value, needle: Value) -> bool:
    if isinstance(haystack, list):
        return any(_equal(item, needle) for item in haystack)
    return to_str(needle).casefold() in to_str(haystack).casefold()


FUNCTIONS: Mapping[str, Function] = {
    "not": lambda value: not to_bool(value),
    "eq": _equal,
    "ne": lambda left, right: not _equal(left, right),
    "lt": _ordered(lambda order: order < 0),
    "le": _ordered(lambda order: order <= 0),
    "gt": _ordered(lambda order: order > 0),
    "ge": _ordered(lambda order: order >= 0),
    "in": lambda needle, *candidates: any(_equal(needle, item) for item in candidates),
    "notIn": lambda needle, *candidates: not any(_equal(needle, item) for item in candidates),
    "startsWith": lambda text, prefix: (
        to_str(text).casefold().startswith(to_str(prefix).casefold())
    ),
    "endsWith": lambda text, suffix: to_str(text).casefold().endswith(to_str(suffix).casefold()),
    "contains": _contains,
    "containsValue": lambda collection, value: _contains(
        list(collection.values()) if isinstance(collection, dict) else collection, value
    ),
    "lower": lambda text: to_str(text).lower(),
    "upper": lambda text: to_str(text).upper(),
    "replace": lambda text, old, new: to_str(text).replace(to_str(old), to_str(new)),
    "join": _join,
    "length": _length,
    "format": _format,
    "coalesce": lambda *values: next((v for v in values if v is not None and v != ""), None),
}


def _lookup(target: Value, key: Value) -> Value:
    if isinstance(target, dict):
        wanted = to_str(key).casefold()
        return next((value for name, value in target.items() if name.casefold() == wanted), None)
    if isinstance(target, list) and isinstance(key, int | float) and 0 <= key < len(target):
        return target[int(key)]
    return None


class _Evaluator:
    def __init__(
        self, text: str, context: Mapping[str, Value], functions: Mapping[str, Function]
    ) -> None:
        self._text = text
        self._context = context
        self._functions = {**FUNCTIONS, **functions}

    def run(self, node: _Node) -> Value:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Name):
            if node.name not in self._context:
                raise ExpressionError(f"unknown name {node.name!r} in {self._text!r}")
            return self._context[node.name]
        if isinstance(node, _Member):
            return _lookup(self.run(node.target), self.run(node.key))
        if node.function == "and":
            return all(to_bool(self.run(argument)) for argument in node.arguments)
        if node.function == "or":
            return any(to_bool(self.run(argument)) for argument in node.arguments)
        function = self._functions.get(node.function)
        if function is None:
            raise ExpressionError(f"unknown function {node.function}() in {self._text!r}")
        return function(*(self.run(argument) for argument in node.arguments))


def evaluate(
    text: str,
    context: Mapping[str, Value],
    functions: Mapping[str, Function] | None = None,
) -> Value:
    """Evaluates `text` with named values (`parameters`, `variables`, ...) and extra functions.

    Conditions pass their status functions (`succeeded`, `failed`, `always`, ...) in `functions`:
    what they answer depends on how the run went so far, which only the caller knows.
    """
    return _Evaluator(text, context, functions or {}).run(_Parser(text).parse())
