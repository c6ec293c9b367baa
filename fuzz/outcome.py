"""What the fuzz harnesses accept as an outcome: a result, or a clear hearby error.

Both harnesses share this rule. For any input the code under test must either return a
well-formed result or raise a :class:`~services.common.errors.HearbyError` whose message
a caller can read. Anything else is a finding, and the harness raises it so that libFuzzer
records the input: another exception type, a message that is empty, a traceback, or an
object repr.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from services.common.errors import HearbyError

T = TypeVar("T")

SELF_TEST_FLAG = "--self-test"
"""Harness flag (not passed on to libFuzzer): the target fails on :data:`SELF_TEST_INPUT`."""
SELF_TEST_INPUT = b"hearby-fuzz-self-test"
"""The input that a harness started with :data:`SELF_TEST_FLAG` crashes on."""
# Error messages end up in gRPC status details and dead-letter reasons. 2000 characters is
# far more than any hearby message needs; a longer one has copied input or a dump into it.
MAX_MESSAGE_CHARS = 2000
# What a message must not hold: Python's own text, which means nothing to a caller.
_TRACEBACK = "Traceback (most recent call last)"
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")  # "<_io.BytesIO object at 0x7f...>"


class UnclearError(AssertionError):
    """A HearbyError was raised, but its message is no use to a caller."""


class SelfTestCrash(LookupError):
    """What the self-test target raises: an exception type no harness accepts."""


def check_error(exc: HearbyError, echo: str = "") -> None:
    """Accepts ``exc`` when its message is readable; raises UnclearError otherwise.

    Args:
        exc: The error the code under test raised.
        echo: The input, as far as the message may quote it. A filter error quotes the
            filter near the problem, so a filter that itself contains a traceback header
            or an object repr is not a finding.

    Raises:
        UnclearError: The message is empty, too long, or holds a traceback or an object
            repr that did not come from ``echo``.
    """
    message = exc.message
    problems = []
    if not isinstance(message, str) or not message.strip():
        problems.append("an empty message")
    elif len(message) > MAX_MESSAGE_CHARS:
        problems.append(f"a {len(message)}-character message")
    elif _TRACEBACK in message and _TRACEBACK not in echo:
        problems.append("a traceback in the message")
    elif any(m.group() not in echo for m in _OBJECT_REPR.finditer(message)):
        problems.append("an object repr in the message")
    if problems:
        raise UnclearError(
            f"{type(exc).__name__} with {problems[0]}: {str(message)[:300]!r}"
        ) from exc


def harness_argv(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Splits a harness's command line into libFuzzer's arguments and the self-test flag.

    libFuzzer reads every argument that does not start with ``-`` as a corpus folder and
    warns about flags it does not know, so the harness's own flag is taken out first.

    Returns:
        (the arguments for ``atheris.Setup``, whether ``--self-test`` was given).
    """
    rest = [arg for arg in argv if arg != SELF_TEST_FLAG]
    return rest, len(rest) != len(argv)


def self_test_target(target: Callable[..., T], trigger: Callable[..., bool]) -> Callable[..., T]:
    """``target``, except that it raises SelfTestCrash whenever ``trigger(*args)`` holds.

    A harness run with ``--self-test`` wraps its target in this, so that a test can check
    that the harness reports an unexpected exception as a crash instead of swallowing it.
    """

    def wrapped(*args: object, **kwargs: object) -> T:
        if trigger(*args):
            raise SelfTestCrash("self-test: the target raised an unexpected exception")
        return target(*args, **kwargs)

    return wrapped
