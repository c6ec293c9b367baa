"""atheris harness for the filter compiler: any text compiles safely or fails with a clear error.

Each input is decoded as UTF-8 (bad bytes become U+FFFD, as a gRPC string field holds only
valid text) and given to :func:`services.vectorstore.filters.compile_filter`. Allowed
outcomes: ``InvalidArgument`` with a readable message, or a Milvus expression that

* reads, by Milvus's rules (:mod:`fuzz.semantics`), as comparisons of known fields only,
  with no unary ``not`` and at most ``MAX_MILVUS_DEPTH`` nested and/or operators;
* matches the same records as hearby's own syntax tree for the input (records built from
  the literals in it, so the comparisons both hold and fail).

The same text is also quoted with :func:`~services.vectorstore.filters.quote`: the literal
must read back as exactly that text, or the call must refuse a line break.

Run it through ``python -m fuzz.run --target filter``; by hand::

    python -m fuzz.filter_parser -runs=1000 -dict=var/fuzz/filter/filter.dict \
        var/fuzz/filter/corpus
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["services"]):
    from services.common.errors import InvalidArgument
    from services.vectorstore import filters

from fuzz import semantics
from fuzz.outcome import SELF_TEST_INPUT, check_error, harness_argv, self_test_target

# Records built per input: enough to make each comparison both hold and fail somewhere,
# few enough to keep a run well under a millisecond.
_RECORDS_PER_INPUT = 4


def _records(node: filters.Node) -> list[dict[str, semantics.Value]]:
    """Records whose fields take the input's own literals (and a neutral value)."""
    texts = [v for v in semantics.literals(node) if isinstance(v, str)] or [""]
    numbers = [v for v in semantics.literals(node) if isinstance(v, float)] or [0.0]
    records = []
    for i in range(_RECORDS_PER_INPUT):
        record: dict[str, semantics.Value] = {}
        for j, field in enumerate(filters.TEXT_FIELDS):
            # i == 0 gives every field a value no literal is likely to equal.
            record[field] = texts[(i + j) % len(texts)] if i else "\x00"
        for j, field in enumerate(filters.NUMBER_FIELDS):
            record[field] = numbers[(i + j) % len(numbers)] if i else -1.0
        records.append(record)
    return records


def _check_compiled(text: str, compiled: str) -> None:
    """Raises AssertionError unless ``compiled`` is a safe Milvus form of ``text``."""
    node = filters.parse(text)
    if node is None:
        if compiled != "":
            raise AssertionError(f"blank filter compiled to {compiled!r}")
        return
    try:
        milvus = semantics.read(compiled)
    except semantics.MilvusSyntaxError as exc:
        raise AssertionError(f"compiled {compiled!r} does not read as Milvus: {exc}") from exc
    unknown = semantics.fields(milvus) - filters.FIELDS
    if unknown:
        raise AssertionError(f"compiled {compiled!r} names unknown fields {unknown}")
    if semantics.depth(milvus) > filters.MAX_MILVUS_DEPTH:
        raise AssertionError(f"compiled {compiled!r} nests {semantics.depth(milvus)} deep")
    for record in _records(node):
        if semantics.evaluate(milvus, record) != semantics.evaluate_hearby(node, record):
            raise AssertionError(f"{text!r} and its compiled {compiled!r} differ on {record}")


def _check_quote(text: str) -> None:
    """Raises AssertionError unless ``quote(text)`` reads back as ``text`` or is refused."""
    try:
        literal = filters.quote(text)
    except InvalidArgument as exc:
        check_error(exc, echo=text)
        if "\n" not in text and "\r" not in text:
            raise AssertionError(f"quote refused {text!r}, which has no line break") from exc
        return
    value, end = semantics.read_string(literal, 0)
    if value != text or end != len(literal):
        raise AssertionError(f"quote({text!r}) = {literal!r} reads back as {value!r}")


def check(data: bytes, compile_filter: Callable[[str], str] = filters.compile_filter) -> None:
    """Compiles and quotes ``data`` as text; raises only on an outcome that is not allowed.

    Args:
        data: The fuzzer's input, taken as a caller's filter.
        compile_filter: The compiler (replaced only by the self-test).

    Raises:
        AssertionError: An unsafe or wrong compiled expression, or an unclear message.
        Exception: Whatever else the compiler raised (a finding, re-raised as it is).
    """
    text = data.decode("utf-8", "replace")
    try:
        compiled = compile_filter(text)
    except InvalidArgument as exc:
        check_error(exc, echo=text)
    else:
        _check_compiled(text, compiled)
    _check_quote(text)


def main() -> None:
    """Starts libFuzzer on :func:`check` with the command line's flags and folders."""
    argv, self_test = harness_argv(sys.argv)
    target = check
    if self_test:
        marker = SELF_TEST_INPUT.decode()
        failing = self_test_target(filters.compile_filter, lambda text, *_: text == marker)
        target = functools.partial(check, compile_filter=failing)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
