"""The naming rules of hearby's shared identifiers, checked the same way by every service.

``proto/hearby/common/v1/types.proto`` states them:

- an encoder *version* is named by 1..64 characters from ``[a-z0-9_-]``, starting with a
  letter or digit (it is also a Triton model name and a folder name, and a name such as
  ``-x`` would read as a command-line option);
- a *track id* is 1..128 characters from ``[A-Za-z0-9._:-]``.

The checks raise :class:`~services.common.errors.InvalidArgument` whose message gives the
rule, so a caller learns what to send instead.
"""

from __future__ import annotations

import re

from services.common.errors import InvalidArgument

# Match with fullmatch: with match() and "$", a trailing newline would slip through.
VERSION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TRACK_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# How much of a rejected value an error message quotes: all of one that is just too long,
# not the megabyte a broken caller might send.
_QUOTED_CHARS = 140


def check_version_name(name: str) -> str:
    """Returns ``name`` if it is a valid encoder version name.

    Args:
        name: The version name to check.

    Returns:
        ``name``, unchanged.

    Raises:
        InvalidArgument: It is not; the message gives the rule.
    """
    if not VERSION_NAME.fullmatch(name):
        raise InvalidArgument(
            f"version name {name[:_QUOTED_CHARS]!r} is invalid: use 1-64 characters of "
            "a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return name


def check_track_id(track_id: str, what: str = "track_id") -> str:
    """Returns ``track_id`` if it is a valid track id.

    Args:
        track_id: The id to check.
        what: How to name the id in the error, e.g. ``records[3].track_id``.

    Returns:
        ``track_id``, unchanged.

    Raises:
        InvalidArgument: It is not; the message names ``what`` and gives the rule.
    """
    if not TRACK_ID.fullmatch(track_id):
        raise InvalidArgument(
            f"{what} {track_id[:_QUOTED_CHARS]!r} is not a valid track id: use 1-128 "
            "characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
        )
    return track_id
