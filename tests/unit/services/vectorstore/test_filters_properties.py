"""Property tests of the filter compiler: any text compiles safely or fails with InvalidArgument.

Trees are generated from the grammar in ``services/vectorstore/filters.py`` (its real
FIELDS, operators and nesting), rendered to hearby text, compiled, and the Milvus text is
then read back by Milvus's rules (fuzz/semantics.py, written apart from the compiler) and
evaluated on records. It must match exactly the records that hearby's own tree matches:
that checks the De Morgan push-down of ``not`` and that no quoted value escapes its literal.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz import semantics
from fuzz.outcome import check_error
from services.common.errors import InvalidArgument
from services.vectorstore import filters
from services.vectorstore.filters import (
    FIELDS,
    MAX_MILVUS_DEPTH,
    MAX_NESTING,
    NUMBER_FIELDS,
    TEXT_FIELDS,
    And,
    Compare,
    In,
    Not,
    Or,
    compile_filter,
    conjunction,
    ids_expression,
    parse,
    quote,
)

# The suite's profile: enough examples to reach every grammar rule in combination, few
# enough for a few seconds per test on a 2-core CI machine. No example database: it would
# be written into the working tree (.hypothesis/).
PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Generated trees can exceed the 1 KiB limit callers get; the grammar is what is tested.
NO_LIMIT = 1 << 20
_OPS = ("==", "!=", "<", "<=", ">", ">=")
# Strings that look like the grammar or like Milvus, to try to end a literal early.
TRICKY = (
    "",
    "a",
    "bossa",
    '"',
    "\\",
    '\\"',
    '" or genre != "',
    '") or (title == "x',
    "not in [",
    "\t",
    "\\n",
    "é🎵",
    "\u2028",
)
NUMBERS = (0.0, -0.0, 90.0, 120.5, -3.5, 1e-300, 1e300, 5e-324)

# Any text a proto string can hold but a line break, which hearby refuses in a value.
values_text = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")),
)
values_number = st.one_of(
    st.sampled_from(NUMBERS), st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def comparisons(draw: st.DrawFn) -> Compare | In:
    """``field op value`` or ``field in [values]`` with a value of the field's type."""
    field = draw(st.sampled_from(sorted(FIELDS)))
    values = values_text if field in TEXT_FIELDS else values_number
    if draw(st.booleans()):
        return Compare(field, draw(st.sampled_from(_OPS)), draw(values))
    return In(field, tuple(draw(st.lists(values, min_size=1, max_size=4))))


def _combine(children: st.SearchStrategy[filters.Node]) -> st.SearchStrategy[filters.Node]:
    operands = st.lists(children, min_size=2, max_size=5).map(tuple)
    return st.one_of(children.map(Not), operands.map(And), operands.map(Or))


trees = st.recursive(comparisons(), _combine, max_leaves=24)


def _literal(value: str | float) -> str:
    """A value in hearby syntax: repr for numbers, double quotes with \\ and \" escaped."""
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrapped(node: filters.Node) -> str:
    # Parentheses round every and/or operand keep the tree's exact shape through a parse.
    text = render(node)
    return f"({text})" if isinstance(node, And | Or) else text


def render(node: filters.Node) -> str:
    """The hearby text of ``node`` (the inverse of ``parse``)."""
    if isinstance(node, Compare):
        return f"{node.field} {node.op} {_literal(node.value)}"
    if isinstance(node, In):
        return f"{node.field} in [{', '.join(_literal(v) for v in node.values)}]"
    if isinstance(node, Not):
        return f"not {_wrapped(node.operand)}"
    keyword = " and " if isinstance(node, And) else " or "
    return keyword.join(_wrapped(operand) for operand in node.operands)


def _nesting(node: filters.Node) -> int:
    """Parentheses and ``not`` levels in :func:`render`'s text (the parser's MAX_NESTING)."""
    if isinstance(node, Compare | In):
        return 0
    if isinstance(node, Not):
        return 1 + isinstance(node.operand, And | Or) + _nesting(node.operand)
    return max(_nesting(o) + isinstance(o, And | Or) for o in node.operands)


@st.composite
def records(draw: st.DrawFn, node: filters.Node) -> dict[str, str | float]:
    """A record whose fields often take the tree's own literals, so comparisons flip."""
    found = semantics.literals(node)
    texts = [v for v in found if isinstance(v, str)] + ["", "m"]
    numbers = [v for v in found if isinstance(v, float)] + [0.0, 100.0]
    record: dict[str, str | float] = {}
    for field in TEXT_FIELDS:
        record[field] = draw(st.sampled_from(texts))
    for field in NUMBER_FIELDS:
        record[field] = draw(st.sampled_from(numbers))
    return record


def _compiled_or_refused(text: str) -> str | None:
    """compile_filter(text), or None when it raised a clear InvalidArgument."""
    try:
        return compile_filter(text, max_length=NO_LIMIT)
    except InvalidArgument as exc:
        check_error(exc, echo=text)
        return None


@PROPERTIES
@given(st.text(max_size=300))
@example('genre == "a" and (((((((((((((((((((((((((((((((((((((((x')
@example("tempo_bpm > 1e999")
@example('title == "\\u"')
@example("Traceback")  # quoted back as an unknown field: the caller's text, not a traceback
def test_compile_filter_raises_only_invalid_argument_for_any_text(text):
    try:
        compiled = compile_filter(text)
    except InvalidArgument as exc:
        check_error(exc, echo=text)
        assert re.match(r"(invalid filter at position \d+|filter is \d+ characters)", exc.message)
        return
    assert isinstance(compiled, str)
    assert (compiled == "") == (not text.strip())


tokens = st.one_of(
    st.sampled_from(
        ["and", "or", "not", "in", "(", ")", "[", "]", ",", *_OPS, "=", "!", "'", "&", "|"]
    ),
    st.sampled_from([*sorted(FIELDS), "year", "Genre", "_x"]),
    values_text.map(_literal),
    values_number.map(repr),
    st.sampled_from(['"open', "1.2.3", "1e", "-", ".", "\\", "\n", "\u00a0"]),
)


@PROPERTIES
@given(st.lists(tokens, max_size=30), st.sampled_from([" ", "", "\t"]))
def test_compile_filter_raises_only_invalid_argument_for_any_token_sequence(parts, separator):
    compiled = _compiled_or_refused(separator.join(parts))
    if compiled:
        semantics.read(compiled)  # Whatever compiles is Milvus the reader accepts.


@PROPERTIES
@given(trees)
def test_parse_reads_every_rendered_tree_back_as_the_same_tree(tree):
    text = render(tree)
    if _nesting(tree) > MAX_NESTING:
        with pytest.raises(InvalidArgument, match=f"nested deeper than {MAX_NESTING} levels"):
            parse(text, max_length=NO_LIMIT)
    else:
        assert parse(text, max_length=NO_LIMIT) == tree


@PROPERTIES
@given(trees, st.data())
def test_compiled_filter_matches_exactly_the_records_the_tree_matches(tree, data):
    compiled = _compiled_or_refused(render(tree))
    if compiled is None:
        return  # Too deep: refused clearly (see the depth test).
    milvus = semantics.read(compiled)
    assert semantics.fields(milvus) <= FIELDS
    assert semantics.depth(milvus) <= MAX_MILVUS_DEPTH
    for _ in range(4):
        record = data.draw(records(tree))
        assert semantics.evaluate(milvus, record) == semantics.evaluate_hearby(tree, record)


@PROPERTIES
@given(trees, st.data())
def test_not_compiles_to_the_complement_of_the_filter(tree, data):
    text = render(tree)
    positive = _compiled_or_refused(text)
    negative = _compiled_or_refused(f"not ({text})")
    if positive is None or negative is None:
        return
    assert " not " not in f" {negative} ".replace(" not in ", " in ")  # no unary not
    milvus, negated = semantics.read(positive), semantics.read(negative)
    for _ in range(4):
        record = data.draw(records(tree))
        assert semantics.evaluate(negated, record) == (not semantics.evaluate(milvus, record))


@PROPERTIES
@given(trees)
def test_compiled_depth_stays_within_milvus_or_is_refused_clearly(tree):
    text = render(tree)
    try:
        compiled = compile_filter(text, max_length=NO_LIMIT)
    except InvalidArgument as exc:
        deep = re.fullmatch(
            rf"filter nests (\d+) and/or levels deep once compiled; at most {MAX_MILVUS_DEPTH}",
            exc.message,
        )
        assert deep or f"nested deeper than {MAX_NESTING}" in exc.message, exc.message
        if deep:
            assert int(deep.group(1)) > MAX_MILVUS_DEPTH
        return
    assert semantics.depth(semantics.read(compiled)) <= MAX_MILVUS_DEPTH


@settings(PROPERTIES, max_examples=100)  # each compiles up to 600 comparisons
@given(st.integers(1, 600), st.sampled_from(["and", "or"]))
def test_a_long_chain_compiles_to_a_balanced_tree(length, keyword):
    text = f" {keyword} ".join(f"tempo_bpm != {i}" for i in range(length))
    milvus = semantics.read(compile_filter(text, max_length=NO_LIMIT))
    # Balanced: log2 of the chain's length, where Milvus would nest a flat chain length-1 deep.
    assert semantics.depth(milvus) == math.ceil(math.log2(length))


def test_compile_filter_refuses_a_filter_that_would_nest_beyond_milvus():
    # 32 levels of parentheses, each adding an operator, over a 1024-long chain (10 more).
    chain = " or ".join(f"tempo_bpm != {i}" for i in range(1024))
    text = chain
    for level in range(MAX_NESTING):
        text = f'genre == "g{level}" {"and" if level % 2 else "or"} ({text})'
    with pytest.raises(InvalidArgument, match=r"nests 42 and/or levels deep once compiled"):
        compile_filter(text, max_length=NO_LIMIT)


@PROPERTIES
@given(st.integers(0, 2 * MAX_NESTING), st.sampled_from(["not ", "("]))
def test_nesting_compiles_up_to_the_limit_and_is_refused_clearly_beyond(levels, opener):
    closer = ")" if opener == "(" else ""
    text = opener * levels + 'genre == "a"' + closer * levels
    if levels <= MAX_NESTING:
        negated = opener == "not " and levels % 2
        assert compile_filter(text) == ('genre != "a"' if negated else 'genre == "a"')
    else:
        with pytest.raises(InvalidArgument, match=f"nested deeper than {MAX_NESTING} levels"):
            compile_filter(text)


@PROPERTIES
@given(values_text)
@example('" or genre != "')
@example("\\")
def test_quote_reads_back_as_exactly_the_text_and_nothing_more(text):
    literal = quote(text)
    assert semantics.read_string(literal, 0) == (text, len(literal))


@PROPERTIES
@given(st.text(), st.sampled_from(["\n", "\r", "\r\n"]))
def test_quote_refuses_any_text_with_a_line_break(text, line_break):
    with pytest.raises(InvalidArgument, match="line breaks cannot be used") as caught:
        quote(text + line_break)
    check_error(caught.value, echo=text + line_break)


@PROPERTIES
@given(st.sampled_from(TEXT_FIELDS), values_text)
@example("genre", '" or genre != "')
@example("title", '\\" or title != \\"')
def test_a_quoted_value_stays_one_comparison(field, value):
    compiled = compile_filter(f"{field} == {_literal(value)}", max_length=NO_LIMIT)
    assert compiled == f"{field} == {quote(value)}"
    assert semantics.read(compiled) == semantics.Cmp(field, "==", value)


@PROPERTIES
@given(st.lists(values_text, max_size=8), st.booleans())
def test_ids_expression_reads_back_as_one_membership_test(ids, exclude):
    text = ids_expression("track_id", ids, exclude=exclude)
    if not ids:
        assert text == ""
    else:
        assert semantics.read(text) == semantics.Member("track_id", tuple(ids), exclude)


@PROPERTIES
@given(st.lists(st.one_of(st.just(None), trees), max_size=4), st.data())
def test_conjunction_matches_the_records_every_part_matches(parts, data):
    compiled = [_compiled_or_refused(render(p)) if p is not None else "" for p in parts]
    pairs = [(p, c) for p, c in zip(parts, compiled, strict=True) if c is not None]
    joined = conjunction(*(c for _, c in pairs))
    present = [(p, c) for p, c in pairs if c]
    if not present:
        assert joined == ""
        return
    milvus = semantics.read(joined)
    for _ in range(3):
        record = data.draw(records(And(tuple(p for p, _ in present))))
        expected = all(semantics.evaluate_hearby(p, record) for p, _ in present)
        assert semantics.evaluate(milvus, record) == expected
