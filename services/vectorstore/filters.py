r"""Compiles hearby filter expressions (``hearby.common.v1.Filter``) into Milvus expressions.

The hearby grammar (see ``proto/hearby/common/v1/types.proto``)::

    expr   := term ("or" term)*
    term   := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | cmp
    cmp    := FIELD OP VALUE | FIELD "in" "[" VALUE ("," VALUE)* "]"
    OP     := "==" | "!=" | "<" | "<=" | ">" | ">="

Lexical rules chosen here, where the proto leaves them open: keywords and field names are
lower case and case-sensitive; strings are in double quotes, with ``\"`` and ``\\`` as
the only escapes and no line breaks; numbers are decimal (``120``, ``-3.5``, ``1e3``).

The compiler never copies caller text into the Milvus expression: it emits field names from
a fixed table, numbers re-formatted from parsed floats, and strings re-quoted by
:func:`quote`. That rules out injection. It also works around two limits of Milvus Lite
2.5.1 (measured): unary ``not`` is rejected ("unsupported expr proto node"), so negation is
pushed down to the comparisons (De Morgan; ``==`` becomes ``!=``, ``in`` becomes ``not
in``, ...), which is exact because stored fields are never null or NaN; and an ``in`` list
mixing ``100`` and ``101.5`` fails on a DOUBLE field, so every number is written as a float.
Long ``and``/``or`` chains are emitted as balanced trees, because Milvus Lite also fails on
operators nested 50 deep (see :data:`MAX_MILVUS_DEPTH`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from services.common.errors import InvalidArgument

TEXT_FIELDS = ("title", "artist", "genre", "key", "mode", "mood", "instrument")
"""TrackMetadata string fields that filters can use (stored as VARCHAR)."""
NUMBER_FIELDS = ("tempo_bpm", "duration_seconds")
"""TrackMetadata numeric fields that filters can use (stored as DOUBLE)."""
FIELDS = frozenset(TEXT_FIELDS + NUMBER_FIELDS)

DEFAULT_MAX_LENGTH = 1024
# Parentheses and "not" recurse; a cap keeps a 1 KiB expression from exhausting the stack
# and turning a bad request into INTERNAL.
MAX_NESTING = 32
# Milvus Lite 2.5.1 fails ("unsupported expr proto node") once 50 and/or operators nest
# (measured), and Milvus parses "a or b or c ..." as a left-leaning chain: 51 comparisons
# joined by "or" already fail. So chains are emitted as balanced trees (depth log2 n), and
# a compiled depth above this (leaving room for the exclusion clause) is refused.
MAX_MILVUS_DEPTH = 40

_OPS = ("==", "!=", "<=", ">=", "<", ">")
_NEGATED_OP = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_KEYWORDS = frozenset({"and", "or", "not", "in"})
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_LIST = ", ".join(sorted(FIELDS))
# Habits from other query languages, answered with the hearby spelling.
_HINTS = {
    "=": " (compare with '==')",
    "'": " (strings go in double quotes)",
    "&": " (use 'and')",
    "|": " (use 'or')",
    "!": " (use '!=' or 'not')",
}

Value = str | float


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "op", "punct", "string", "number", "end"
    text: str  # the source text (for words, ops and punctuation) or the decoded string
    pos: int  # 0-based offset in the expression
    value: Value | None = None


@dataclass(frozen=True)
class Compare:
    """``field op value``."""

    field: str
    op: str
    value: Value


@dataclass(frozen=True)
class In:
    """``field in [values]``."""

    field: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class And:
    """All operands hold."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one operand holds."""

    operands: tuple[Node, ...]


Node = Compare | In | Not | And | Or


def _error(expression: str, pos: int, problem: str) -> InvalidArgument:
    """An InvalidArgument naming the 1-based character position of the problem."""
    near = expression[pos : pos + 12]
    where = f" near {near!r}" if near else " at the end"
    return InvalidArgument(f"invalid filter at position {pos + 1}{where}: {problem}")


def _read_string(expression: str, start: int) -> tuple[str, int]:
    """Decodes the string literal opening at ``start``; returns it and the end offset."""
    chars: list[str] = []
    i = start + 1
    while i < len(expression):
        ch = expression[i]
        if ch == '"':
            return "".join(chars), i + 1
        if ch in "\r\n":
            raise _error(expression, i, "line breaks are not allowed inside a string")
        if ch == "\\":
            nxt = expression[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                raise _error(
                    expression, i, 'unsupported escape in a string (only \\" and \\\\ are allowed)'
                )
            chars.append(nxt)
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise _error(expression, start, "string is not closed (missing '\"')")


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(expression):
        ch = expression[i]
        if ch.isspace():
            i += 1
        elif ch in "()[],":
            tokens.append(_Token("punct", ch, i))
            i += 1
        elif ch == '"':
            text, end = _read_string(expression, i)
            tokens.append(_Token("string", text, i, text))
            i = end
        elif expression.startswith(_OPS, i):
            op = next(o for o in _OPS if expression.startswith(o, i))
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif number := _NUMBER.match(expression, i):
            end = number.end()
            if end < len(expression) and (expression[end].isalnum() or expression[end] in "_."):
                word = re.compile(r"[\w.]+").match(expression, end)
                text = expression[i : word.end() if word else end]
                raise _error(expression, i, f"malformed number {text!r}")
            value = float(number.group())
            if not math.isfinite(value):
                raise _error(expression, i, f"number {number.group()} is out of range")
            tokens.append(_Token("number", number.group(), i, value))
            i = end
        elif word := _WORD.match(expression, i):
            tokens.append(_Token("word", word.group(), i))
            i = word.end()
        else:
            raise _error(expression, i, f"unexpected character {ch!r}{_HINTS.get(ch, '')}")
    tokens.append(_Token("end", "", len(expression)))
    return tokens


class _Parser:
    """Recursive descent over the token list, one method per grammar rule."""

    def __init__(self, expression: str) -> None:
        self._expression = expression
        self._tokens = _tokenize(expression)
        self._i = 0
        self._depth = 0

    def parse(self) -> Node:
        node = self._expr()
        token = self._peek()
        if token.kind != "end":
            raise self._unexpected(token, "'and', 'or' or the end of the filter")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _at(self, kind: str, text: str) -> bool:
        token = self._peek()
        return token.kind == kind and token.text == text

    def _unexpected(self, token: _Token, wanted: str) -> InvalidArgument:
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        if token.kind == "string":
            found = "a string"
        return _error(self._expression, token.pos, f"expected {wanted}, found {found}")

    def _expect(self, kind: str, text: str) -> _Token:
        token = self._next()
        if token.kind != kind or token.text != text:
            raise self._unexpected(token, repr(text))
        return token

    def _nest(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _error(self._expression, token.pos, f"nested deeper than {MAX_NESTING} levels")

    def _expr(self) -> Node:
        operands = [self._term()]
        while self._at("word", "or"):
            self._next()
            operands.append(self._term())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _term(self) -> Node:
        operands = [self._factor()]
        while self._at("word", "and"):
            self._next()
            operands.append(self._factor())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _factor(self) -> Node:
        token = self._peek()
        if self._at("word", "not"):
            self._next()
            self._nest(token)
            node: Node = Not(self._factor())
            self._depth -= 1
            return node
        if self._at("punct", "("):
            self._next()
            self._nest(token)
            node = self._expr()
            self._expect("punct", ")")
            self._depth -= 1
            return node
        return self._cmp()

    def _field(self) -> str:
        token = self._next()
        if token.kind != "word" or token.text in _KEYWORDS:
            raise self._unexpected(token, "a field name, 'not' or '('")
        if token.text not in FIELDS:
            raise _error(
                self._expression,
                token.pos,
                f"unknown field {token.text!r} (filterable fields: {_FIELD_LIST})",
            )
        return token.text

    def _value(self, field: str) -> Value:
        token = self._next()
        if token.kind not in ("string", "number"):
            raise self._unexpected(token, 'a value (a "string" or a number)')
        assert token.value is not None
        if field in NUMBER_FIELDS and token.kind != "number":
            raise _error(
                self._expression, token.pos, f"{field} is numeric: compare it with a number"
            )
        if field in TEXT_FIELDS and token.kind != "string":
            raise _error(
                self._expression,
                token.pos,
                f'{field} is text: compare it with a "quoted string" (numbers compare with '
                f"{' and '.join(NUMBER_FIELDS)} only)",
            )
        return token.value

    def _cmp(self) -> Node:
        field = self._field()
        token = self._next()
        if token.kind == "op":
            return Compare(field, token.text, self._value(field))
        if token.kind == "word" and token.text == "in":
            self._expect("punct", "[")
            values = [self._value(field)]
            while self._at("punct", ","):
                self._next()
                values.append(self._value(field))
            self._expect("punct", "]")
            return In(field, tuple(values))
        raise self._unexpected(token, "a comparison (==, !=, <, <=, >, >=) or 'in'")


def parse(expression: str, max_length: int = DEFAULT_MAX_LENGTH) -> Node | None:
    """Parses a hearby filter expression.

    Args:
        expression: The filter text; empty (or only whitespace) means no filter.
        max_length: Longest accepted expression in characters.

    Returns:
        The syntax tree, or None for an empty filter.

    Raises:
        InvalidArgument: The expression is too long, does not parse, names an unknown
            field or compares a field with a value of the wrong type; the message gives the
            1-based character position and the problem.
    """
    if len(expression) > max_length:
        raise InvalidArgument(
            f"filter is {len(expression)} characters long; the limit is {max_length}"
        )
    if not expression.strip():
        return None
    return _Parser(expression).parse()


def quote(text: str) -> str:
    r"""``text`` as a Milvus double-quoted string literal.

    Milvus un-escapes only ``\\`` and ``\"`` (measured: ``\n``, ``\t`` and ``\u``
    escapes are kept literally) and rejects raw line breaks, so those are refused.

    Raises:
        InvalidArgument: ``text`` contains a line break.
    """
    if "\n" in text or "\r" in text:
        raise InvalidArgument(f"{text!r}: line breaks cannot be used in a filter value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Value) -> str:
    # repr() of a float always parses back to the same double and always reads as a float
    # ("100.0", "1e+20"), which Milvus needs for DOUBLE fields.
    return repr(value) if isinstance(value, float) else quote(value)


def _balanced(parts: list[tuple[str, int]], joiner: str) -> tuple[str, int]:
    """Joins emitted operands as a balanced binary tree; returns it and its depth."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    left, left_depth = _balanced(parts[:middle], joiner)
    right, right_depth = _balanced(parts[middle:], joiner)
    return f"({left} {joiner} {right})", 1 + max(left_depth, right_depth)


def _emit(node: Node, negate: bool) -> tuple[str, int]:
    """The Milvus text of ``node`` (negated if asked) and its operator depth."""
    if isinstance(node, Compare):
        op = _NEGATED_OP[node.op] if negate else node.op
        return f"{node.field} {op} {_literal(node.value)}", 0
    if isinstance(node, In):
        keyword = "not in" if negate else "in"
        return f"{node.field} {keyword} [{', '.join(_literal(v) for v in node.values)}]", 0
    if isinstance(node, Not):
        return _emit(node.operand, not negate)
    # De Morgan: not (a and b) == (not a) or (not b), and the reverse.
    joiner = "and" if isinstance(node, And) != negate else "or"
    return _balanced([_emit(operand, negate) for operand in node.operands], joiner)


def to_milvus(node: Node) -> str:
    """The Milvus boolean expression equivalent to ``node``, without unary ``not``.

    Raises:
        InvalidArgument: The expression nests deeper than Milvus can evaluate.
    """
    text, depth = _emit(node, negate=False)
    if depth > MAX_MILVUS_DEPTH:
        raise InvalidArgument(
            f"filter nests {depth} and/or levels deep once compiled; at most {MAX_MILVUS_DEPTH}"
        )
    return text


@lru_cache(maxsize=1024)
def compile_filter(expression: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Compiles a hearby filter expression into a Milvus expression.

    A pure function of its arguments, so the last 1024 distinct filters are kept compiled:
    callers repeat a few filters, and parsing one took ~25 us of a ~2 ms Search (issue #5
    c). A refused filter is not kept; it is parsed again and refused again.

    Args:
        expression: The filter text; empty means no filter.
        max_length: Longest accepted expression in characters.

    Returns:
        The Milvus expression, or ``""`` for an empty filter.

    Raises:
        InvalidArgument: See :func:`parse`.
    """
    node = parse(expression, max_length)
    return "" if node is None else to_milvus(node)


def ids_expression(field: str, ids: Iterable[str], *, exclude: bool = False) -> str:
    """``field in [ids]`` (or ``not in``) with each id quoted; ``""`` when ``ids`` is empty."""
    quoted = [quote(i) for i in ids]
    if not quoted:
        return ""
    return f"{field} {'not in' if exclude else 'in'} [{', '.join(quoted)}]"


def conjunction(*expressions: str) -> str:
    """The non-empty Milvus expressions joined with ``and``, each in parentheses."""
    parts = [e for e in expressions if e]
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return " and ".join(f"({p})" for p in parts)
