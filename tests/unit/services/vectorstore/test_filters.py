"""The hearby filter grammar compiled to Milvus expressions: precedence, negation, errors."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.vectorstore import filters
from services.vectorstore.filters import (
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


def test_compile_filter_translates_the_proto_example():
    expression = 'genre == "bossa" and tempo_bpm >= 90 and tempo_bpm <= 120 and artist != "a17"'
    assert compile_filter(expression) == (
        '((genre == "bossa" and tempo_bpm >= 90.0) and (tempo_bpm <= 120.0 and artist != "a17"))'
    )


@pytest.mark.parametrize("expression", ["", "   ", "\t\n"])
def test_compile_filter_returns_empty_when_the_expression_is_blank(expression):
    assert compile_filter(expression) == ""
    assert parse(expression) is None


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_compile_filter_keeps_every_comparison_operator(op):
    assert compile_filter(f"tempo_bpm {op} 100") == f"tempo_bpm {op} 100.0"
    assert compile_filter(f'title {op} "m"') == f'title {op} "m"'


def test_parse_binds_and_tighter_than_or():
    node = parse('genre == "a" or genre == "b" and mood == "c"')
    assert node == Or(
        (
            Compare("genre", "==", "a"),
            And((Compare("genre", "==", "b"), Compare("mood", "==", "c"))),
        )
    )


def test_parse_honours_parentheses_over_precedence():
    node = parse('(genre == "a" or genre == "b") and mood == "c"')
    assert node == And(
        (
            Or((Compare("genre", "==", "a"), Compare("genre", "==", "b"))),
            Compare("mood", "==", "c"),
        )
    )


def test_parse_reads_in_lists_and_not():
    assert parse('not key in ["C", "G"]') == Not(In("key", ("C", "G")))
    assert parse("duration_seconds in [60, 90.5]") == In("duration_seconds", (60.0, 90.5))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('not genre == "a"', 'genre != "a"'),
        ('not genre != "a"', 'genre == "a"'),
        ("not tempo_bpm < 1", "tempo_bpm >= 1.0"),
        ("not tempo_bpm <= 1", "tempo_bpm > 1.0"),
        ("not tempo_bpm > 1", "tempo_bpm <= 1.0"),
        ("not tempo_bpm >= 1", "tempo_bpm < 1.0"),
        ('not genre in ["a", "b"]', 'genre not in ["a", "b"]'),
        ('not not genre == "a"', 'genre == "a"'),
        ('not (genre == "a" and mood == "b")', '(genre != "a" or mood != "b")'),
        (
            'not (genre == "a" and mood == "b" and key == "C")',
            '(genre != "a" or (mood != "b" or key != "C"))',
        ),
        ('not (genre == "a" or mood == "b")', '(genre != "a" and mood != "b")'),
        (
            'not (genre == "a" and not (mood == "b" or tempo_bpm > 3))',
            '(genre != "a" or (mood == "b" or tempo_bpm > 3.0))',
        ),
    ],
)
def test_compile_filter_pushes_not_down_to_comparisons(expression, expected):
    # Milvus Lite 2.5.1 rejects unary "not"; the compiled form must never contain one.
    compiled = compile_filter(expression)
    assert compiled == expected
    assert "not (" not in compiled


@pytest.mark.parametrize(
    ("literal", "value"),
    [("120", 120.0), ("-3.5", -3.5), ("1e3", 1000.0), (".5", 0.5), ("2.", 2.0), ("1E-2", 0.01)],
)
def test_parse_reads_decimal_numbers(literal, value):
    assert parse(f"tempo_bpm == {literal}") == Compare("tempo_bpm", "==", value)


def test_compile_filter_emits_long_chains_as_balanced_trees():
    # Milvus Lite fails once and/or operators nest 50 deep; "a or b or ..." would nest
    # one level per operand.
    assert compile_filter('genre == "a" or genre == "b" or genre == "c"') == (
        '(genre == "a" or (genre == "b" or genre == "c"))'
    )
    chain = " or ".join(f"tempo_bpm == {i}" for i in range(64))
    compiled = compile_filter(chain, max_length=4096)
    depth = max_depth = 0
    for ch in compiled:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        max_depth = max(max_depth, depth)
    assert max_depth == 6


def test_compile_filter_refuses_expressions_nested_too_deep_for_milvus():
    ok = "(tempo_bpm > 0 and " * 31 + 'mood == "x"' + ")" * 31
    assert compile_filter(ok, max_length=4096).count("(") == 31
    chain = " or ".join(f"tempo_bpm == {i}" for i in range(2**10))  # 10 levels balanced
    deep = "(tempo_bpm > 0 and " * 31 + f"({chain})" + ")" * 31  # + 31 levels
    with pytest.raises(InvalidArgument, match="levels deep once compiled; at most 40"):
        compile_filter(deep, max_length=len(deep))


def test_compile_filter_writes_every_number_as_a_float():
    # Milvus Lite fails an `in` list that mixes 100 and 101.5 on a DOUBLE field.
    assert compile_filter("tempo_bpm in [100, 101.5]") == "tempo_bpm in [100.0, 101.5]"
    assert compile_filter("tempo_bpm < 1e20") == "tempo_bpm < 1e+20"


def test_compile_filter_decodes_escapes_and_requotes_strings():
    assert parse(r'artist == "say \"hi\" \\o/"') == Compare("artist", "==", 'say "hi" \\o/')
    assert compile_filter(r'artist == "say \"hi\" \\o/"') == r'artist == "say \"hi\" \\o/"'


def test_compile_filter_keeps_injection_attempts_inside_one_string():
    expression = r'genre == "x\" or track_id != \"\""'
    assert parse(expression) == Compare("genre", "==", 'x" or track_id != ""')
    assert compile_filter(expression) == r'genre == "x\" or track_id != \"\""'


def test_compile_filter_keeps_unicode_and_tabs_in_strings():
    assert compile_filter('title == "café 🎵\tlive"') == 'title == "café 🎵\tlive"'


def test_compile_filter_accepts_any_whitespace_between_tokens():
    assert compile_filter('genre=="a"and(mood!="b")') == '(genre == "a" and mood != "b")'
    assert compile_filter('genre\n==\t"a"') == 'genre == "a"'


@pytest.mark.parametrize(
    ("expression", "position", "problem"),
    [
        ("tempo == 1", 1, "unknown field 'tempo'"),
        ('genre = "x"', 7, "compare with '=='"),
        ("genre == 'x'", 10, "double quotes"),
        ('genre == "x" && mood == "y"', 14, "use 'and'"),
        ('genre == "x" || mood == "y"', 14, "use 'or'"),
        ("genre == 1", 10, 'genre is text: compare it with a "quoted string"'),
        ('tempo_bpm == "1"', 14, "tempo_bpm is numeric: compare it with a number"),
        ('duration_seconds in [1, "2"]', 25, "numeric"),
        ('(genre == "a"', 14, "expected ')', found the end of the filter"),
        ('genre == "a', 10, "string is not closed"),
        ('genre == "a\nb"', 12, "line breaks are not allowed"),
        (r'genre == "a\nb"', 12, "unsupported escape"),
        ("genre in []", 11, "expected a value"),
        ('genre in ["a",]', 15, "expected a value"),
        ('genre in ["a"', 14, "expected ']'"),
        ('genre in "a"', 10, "expected '['"),
        ('genre == "a" mood == "b"', 14, "expected 'and', 'or' or the end"),
        ('genre == "x" AND mood == "y"', 14, "found 'AND'"),
        ("genre", 6, "expected a comparison"),
        ("genre ==", 9, "expected a value"),
        ("and", 1, "expected a field name"),
        ('Genre == "x"', 1, "unknown field 'Genre'"),
        ('extra == "x"', 1, "unknown field 'extra'"),
        ('track_id == "x"', 1, "unknown field 'track_id'"),
        ("tempo_bpm > 12abc", 13, "malformed number '12abc'"),
        ("tempo_bpm > 1.2.3", 13, "malformed number '1.2.3'"),
        ("tempo_bpm > 1e999", 13, "out of range"),
        ("tempo_bpm > -", 13, "unexpected character '-'"),
        ('genre == "a" and', 17, "expected a field name"),
        ("not", 4, "expected a field name"),
        ("()", 2, "expected a field name"),
    ],
)
def test_parse_names_the_position_and_the_problem_when_the_filter_is_bad(
    expression, position, problem
):
    with pytest.raises(InvalidArgument) as error:
        parse(expression)
    assert f"invalid filter at position {position} " in error.value.message
    assert problem in error.value.message


def test_parse_lists_the_filterable_fields_when_a_field_is_unknown():
    with pytest.raises(InvalidArgument) as error:
        parse("bpm > 3")
    for field in filters.FIELDS:
        assert field in error.value.message


def test_parse_rejects_expressions_longer_than_the_limit():
    at_limit = 'genre == "' + "x" * 20 + '"'
    assert parse(at_limit, max_length=len(at_limit)) is not None
    with pytest.raises(InvalidArgument, match="31 characters long; the limit is 30"):
        parse(at_limit, max_length=30)
    with pytest.raises(InvalidArgument, match="limit is 1024"):
        parse('genre == "' + "x" * 1100 + '"')


def test_parse_rejects_nesting_deeper_than_the_limit_instead_of_overflowing():
    depth = filters.MAX_NESTING
    ok = "(" * depth + 'genre == "a"' + ")" * depth
    assert parse(ok) == Compare("genre", "==", "a")
    with pytest.raises(InvalidArgument, match="nested deeper"):
        parse("(" * (depth + 1) + 'genre == "a"' + ")" * (depth + 1))
    with pytest.raises(InvalidArgument, match="nested deeper"):
        parse("not " * 200 + 'genre == "a"')


def test_parse_covers_every_metadata_field():
    for field in filters.TEXT_FIELDS:
        assert parse(f'{field} == "v"') == Compare(field, "==", "v")
    for field in filters.NUMBER_FIELDS:
        assert parse(f"{field} == 1") == Compare(field, "==", 1.0)


def test_quote_escapes_backslashes_and_quotes_and_refuses_line_breaks():
    assert quote('a"b\\c') == r'"a\"b\\c"'
    with pytest.raises(InvalidArgument, match="line breaks"):
        quote("a\nb")
    with pytest.raises(InvalidArgument, match="line breaks"):
        quote("a\rb")


def test_ids_expression_quotes_each_id_and_is_empty_without_ids():
    assert ids_expression("track_id", ["a", "b:1"]) == 'track_id in ["a", "b:1"]'
    assert ids_expression("track_id", ["a"], exclude=True) == 'track_id not in ["a"]'
    assert ids_expression("track_id", []) == ""


def test_conjunction_parenthesises_and_skips_empty_parts():
    assert conjunction("", "") == ""
    assert conjunction("a == 1", "") == "a == 1"
    assert conjunction("a == 1 or b == 2", "c == 3") == "(a == 1 or b == 2) and (c == 3)"
