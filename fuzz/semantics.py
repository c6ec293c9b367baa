r"""Reference semantics for filters: reads and evaluates the Milvus text the compiler emits.

The filter harness and the property tests both use this to check
:func:`services.vectorstore.filters.compile_filter` from the outside. It is written
independently of the compiler and follows Milvus's rules, not hearby's:

* a string literal ends at the first ``"`` not preceded by an escaping ``\``. Only
  ``\\`` and ``\"`` are unescaped (measured on Milvus Lite 2.5.1, see ``quote``); any
  other backslash is kept as it is; a raw line break is an error;
* ``and`` binds tighter than ``or``, and both chain to the left, so ``a or b or c``
  nests two operators deep;
* there is no unary ``not``, only ``not in`` (Milvus Lite rejects the former).

So if the compiled text reads here as the comparisons the caller wrote, a quoted value
could not have broken out of its literal. And if it evaluates like hearby's syntax tree
on the same records, negation was pushed down correctly.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.vectorstore import filters

Value = str | float
Record = Mapping[str, Value]

COMPARE: dict[str, Callable[[Value, Value], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MilvusSyntaxError(ValueError):
    """The text is not in the subset of Milvus that the compiler may emit."""


@dataclass(frozen=True)
class Cmp:
    """``field op literal``."""

    field: str
    op: str
    value: Value


@dataclass(frozen=True)
class Member:
    """``field in [...]``, or ``field not in [...]`` when ``negated``."""

    field: str
    values: tuple[Value, ...]
    negated: bool


@dataclass(frozen=True)
class Binary:
    """``left and right`` or ``left or right``; Milvus's nodes are binary."""

    op: str
    left: MilvusNode
    right: MilvusNode


MilvusNode = Cmp | Member | Binary


def read_string(text: str, start: int) -> tuple[str, int]:
    """Reads the Milvus string literal opening at ``start``; returns it and its end offset.

    Raises:
        MilvusSyntaxError: The literal is not closed or holds a line break.
    """
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(chars), i + 1
        if ch in "\r\n":
            raise MilvusSyntaxError(f"line break inside the string at {start}")
        if ch == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
            chars.append(text[i + 1])
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise MilvusSyntaxError(f"string at {start} is not closed")


def _tokens(text: str) -> list[tuple[str, str | float]]:
    """(kind, value) pairs: kind is word, op, punct, string or number."""
    tokens: list[tuple[str, str | float]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == " ":
            i += 1
        elif ch in "()[],":
            tokens.append(("punct", ch))
            i += 1
        elif ch == '"':
            value, i = read_string(text, i)
            tokens.append(("string", value))
        elif text.startswith(_OPS, i):
            op = next(o for o in _OPS if text.startswith(o, i))
            tokens.append(("op", op))
            i += len(op)
        elif number := _NUMBER.match(text, i):
            tokens.append(("number", float(number.group())))
            i = number.end()
        elif word := _WORD.match(text, i):
            tokens.append(("word", word.group()))
            i = word.end()
        else:
            raise MilvusSyntaxError(f"unexpected {ch!r} at {i}")
    return tokens


class _Reader:
    """Recursive descent over the tokens of the emitted subset."""

    def __init__(self, text: str) -> None:
        self._tokens = _tokens(text)
        self._i = 0

    def _peek(self) -> tuple[str, str | float] | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str | float:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise MilvusSyntaxError(f"expected {value or kind} at token {self._i}, got {token}")
        self._i += 1
        return token[1]

    def _at(self, kind: str, value: str) -> bool:
        return self._peek() == (kind, value)

    def read(self) -> MilvusNode:
        node = self._chain("or", self._term)
        if self._peek() is not None:
            raise MilvusSyntaxError(f"trailing text at token {self._i}: {self._peek()}")
        return node

    def _chain(self, op: str, operand: Callable[[], MilvusNode]) -> MilvusNode:
        node = operand()
        while self._at("word", op):
            self._i += 1
            node = Binary(op, node, operand())
        return node

    def _term(self) -> MilvusNode:
        return self._chain("and", self._factor)

    def _factor(self) -> MilvusNode:
        if self._at("punct", "("):
            self._i += 1
            node = self._chain("or", self._term)
            self._take("punct", ")")
            return node
        field = str(self._take("word"))
        negated = self._at("word", "not")
        if negated or self._at("word", "in"):
            self._i += negated
            self._take("word", "in")
            self._take("punct", "[")
            values = [self._literal()]
            while self._at("punct", ","):
                self._i += 1
                values.append(self._literal())
            self._take("punct", "]")
            return Member(field, tuple(values), negated)
        op = str(self._take("op"))
        return Cmp(field, op, self._literal())

    def _literal(self) -> Value:
        token = self._peek()
        if token is None or token[0] not in ("string", "number"):
            raise MilvusSyntaxError(f"expected a literal at token {self._i}, got {token}")
        self._i += 1
        return token[1]


def read(text: str) -> MilvusNode:
    """The syntax tree of a compiled filter, read as Milvus reads it.

    Raises:
        MilvusSyntaxError: The text is outside the subset the compiler may emit (e.g. a
            unary ``not``, a literal that ends early, unbalanced brackets).
    """
    return _Reader(text).read()


def depth(node: MilvusNode) -> int:
    """How many and/or operators nest in ``node`` (0 for a single comparison)."""
    if isinstance(node, Binary):
        return 1 + max(depth(node.left), depth(node.right))
    return 0


def fields(node: MilvusNode) -> set[str]:
    """The field names ``node`` compares."""
    if isinstance(node, Binary):
        return fields(node.left) | fields(node.right)
    return {node.field}


def evaluate(node: MilvusNode, record: Record) -> bool:
    """Whether ``record`` matches the Milvus expression ``node``."""
    if isinstance(node, Cmp):
        return COMPARE[node.op](record[node.field], node.value)
    if isinstance(node, Member):
        return (record[node.field] in node.values) != node.negated
    if node.op == "and":
        return evaluate(node.left, record) and evaluate(node.right, record)
    return evaluate(node.left, record) or evaluate(node.right, record)


def evaluate_hearby(node: filters.Node, record: Record) -> bool:
    """Whether ``record`` matches hearby's syntax tree, with ``not`` taken literally."""
    if isinstance(node, filters.Compare):
        return COMPARE[node.op](record[node.field], node.value)
    if isinstance(node, filters.In):
        return record[node.field] in node.values
    if isinstance(node, filters.Not):
        return not evaluate_hearby(node.operand, record)
    results = (evaluate_hearby(operand, record) for operand in node.operands)
    return all(results) if isinstance(node, filters.And) else any(results)


def literals(node: filters.Node) -> list[Value]:
    """Every value ``node`` compares with, in order (to build records that hit them)."""
    if isinstance(node, filters.Compare):
        return [node.value]
    if isinstance(node, filters.In):
        return list(node.values)
    if isinstance(node, filters.Not):
        return literals(node.operand)
    return [value for operand in node.operands for value in literals(operand)]
