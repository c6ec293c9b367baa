"""The shared naming rules: encoder version names and track ids (types.proto)."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.common.names import check_track_id, check_version_name


@pytest.mark.parametrize("name", ["a", "0", "ts-ps-2026-11-20", "x_1", "a-", "9_", "a" * 64])
def test_check_version_name_accepts_the_contract_grammar(name):
    assert check_version_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "a.b", "a b", "é", "a" * 65, "a/b", "-", "_", "-lead", "_x", "a\n"]
)
def test_check_version_name_rejects_names_outside_the_grammar_giving_the_rule(name):
    with pytest.raises(InvalidArgument, match=r"use 1-64 characters.*starting with a letter"):
        check_version_name(name)


def test_check_version_name_quotes_a_huge_name_only_in_part():
    with pytest.raises(InvalidArgument) as refused:
        check_version_name("x" * 100_000)
    assert len(refused.value.message) < 300


@pytest.mark.parametrize("track_id", ["a", "B.9:_-x", "x" * 128, "-", "fma:000123"])
def test_check_track_id_accepts_the_contract_grammar(track_id):
    assert check_track_id(track_id) == track_id


@pytest.mark.parametrize("track_id", ["", "b c", "x" * 129, "a/b", "é", "a\n"])
def test_check_track_id_rejects_ids_outside_the_grammar_naming_the_field(track_id):
    with pytest.raises(InvalidArgument, match=r"^records\[2\]\.track_id .* is not a valid track"):
        check_track_id(track_id, "records[2].track_id")
