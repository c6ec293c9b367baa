"""API keys: format, the hashed key file, and the key store that follows it."""

from __future__ import annotations

import json
import stat

import pytest

from services.common.auth import (
    KeyStore,
    Scope,
    add_key,
    key_id_of,
    new_key,
    parse_scopes,
    read_key_file,
    revoke_key,
    split_key,
    write_key_file,
)
from services.common.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

READ = frozenset({Scope.READ})
ADMIN = frozenset({Scope.ADMIN})


def test_new_key_has_the_documented_format_and_its_entry_holds_only_a_hash():
    token, entry = new_key("partner", READ)
    key_id, secret = split_key(token)
    assert token.startswith("hb_") and key_id == entry.key_id and len(secret) == 43
    assert secret not in json.dumps(entry.to_json())
    assert len(entry.secret_sha256) == 64


def test_split_key_refuses_malformed_keys_without_repeating_them():
    with pytest.raises(Unauthenticated) as err:
        split_key("hb_zz_secret-that-must-not-be-echoed")
    assert "secret-that-must-not-be-echoed" not in err.value.message
    assert key_id_of("nonsense") == "?"


def test_parse_scopes_reads_lists_and_refuses_unknown_or_empty_scopes():
    assert parse_scopes("read, WRITE") == {Scope.READ, Scope.WRITE}
    with pytest.raises(InvalidArgument, match="unknown scope 'root'"):
        parse_scopes("read,root")
    with pytest.raises(InvalidArgument, match="at least one scope"):
        parse_scopes(" , ")


def test_key_file_is_private_and_round_trips(tmp_path):
    path = tmp_path / "keys" / "keys.json"
    token, entry = add_key(path, "ranker", ADMIN, rate_per_second=0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert split_key(token)[1] not in path.read_text()
    assert read_key_file(path) == {entry.key_id: entry}


def test_a_file_that_is_not_a_key_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('{"format": 99}')
    with pytest.raises(InvalidArgument, match="not a hearby key file"):
        read_key_file(path)


def test_key_store_accepts_the_key_and_refuses_wrong_unknown_and_revoked_keys(tmp_path):
    path = tmp_path / "keys.json"
    token, entry = add_key(path, "app", READ)
    store = KeyStore(path)
    assert store.authenticate(token).name == "app"
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(Unauthenticated, match=f"unknown API key {entry.key_id}"):
        store.authenticate(wrong)
    other, _ = new_key("stranger", READ)
    with pytest.raises(Unauthenticated, match="unknown API key"):
        store.authenticate(other)
    revoke_key(path, entry.key_id)
    with pytest.raises(Unauthenticated, match="was revoked"):
        store.authenticate(token)


def test_key_store_follows_the_file_without_being_rebuilt(tmp_path):
    path = tmp_path / "keys.json"
    add_key(path, "first", READ)
    store = KeyStore(path)
    later, _ = add_key(path, "later", READ)
    assert store.authenticate(later).name == "later"


def test_key_store_keeps_the_last_good_keys_when_the_file_is_broken(tmp_path):
    path = tmp_path / "keys.json"
    token, _ = add_key(path, "app", READ)
    store = KeyStore(path)
    store.authenticate(token)
    path.write_text("{ half written")
    assert store.authenticate(token).name == "app"


def test_authorize_checks_the_scope_and_admin_includes_every_scope(tmp_path):
    path = tmp_path / "keys.json"
    reader, _ = add_key(path, "reader", READ)
    admin, _ = add_key(path, "ops", ADMIN)
    store = KeyStore(path)
    with pytest.raises(PermissionDenied, match="has scopes read; this call needs admin"):
        store.authorize(reader, Scope.ADMIN)
    with pytest.raises(PermissionDenied):
        store.authorize(reader, Scope.WRITE)
    for scope in Scope:
        assert store.authorize(admin, scope).name == "ops"


def test_key_store_without_a_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="hearby keys create"):
        KeyStore(tmp_path / "missing.json")


def test_revoking_an_unknown_key_is_not_found(tmp_path):
    path = tmp_path / "keys.json"
    write_key_file(path, [])
    with pytest.raises(NotFound):
        revoke_key(path, "deadbeef")
