"""The users file: password hashes, verify, the file's mode and atomic writes, the throttle."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dashboard import users
from dashboard.users import LoginThrottle, PasswordHash, Role
from services.common import files
from services.common.errors import AlreadyExists, InvalidArgument, NotFound

PASSWORD = "correct horse battery"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "dashboard-users.json"


def test_password_hash_matches_only_the_password_hashed():
    hashed = PasswordHash.of(PASSWORD)
    assert hashed.matches(PASSWORD)
    assert not hashed.matches(PASSWORD + "!")
    assert not hashed.matches("")
    assert (hashed.n, hashed.r, hashed.p) == (2**14, 8, 1)
    assert len(bytes.fromhex(hashed.salt)) == 16


def test_password_hash_differs_per_user_when_passwords_are_equal():
    first, second = PasswordHash.of(PASSWORD), PasswordHash.of(PASSWORD)
    assert first.salt != second.salt
    assert first.digest != second.digest


def test_password_hash_is_scrypt_with_the_stored_parameters():
    import hashlib

    salt = bytes(range(16))
    hashed = PasswordHash.of(PASSWORD, salt=salt)
    expected = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    assert hashed.digest == expected.hex()


def test_password_hash_verifies_with_its_own_parameters_when_they_differ_from_today():
    import hashlib

    salt = b"s" * 16
    old = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    hashed = PasswordHash(salt.hex(), old.hex(), n=2**10)
    assert hashed.matches(PASSWORD)
    assert PasswordHash.from_json(hashed.to_json()) == hashed


def test_add_user_stores_a_hash_not_the_password(path: Path):
    users.add_user(path, "ana", PASSWORD, Role.REVIEWER)
    text = path.read_text()
    assert PASSWORD not in text
    entry = json.loads(text)["users"][0]
    assert entry["name"] == "ana"
    assert entry["role"] == "reviewer"
    assert entry["disabled"] is False
    assert entry["created"]
    assert entry["password"]["scheme"] == "scrypt"
    assert {"n", "r", "p", "salt", "hash"} <= set(entry["password"])


def test_users_file_has_mode_0600_when_written(path: Path):
    users.add_user(path, "ana", PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_users_file_is_replaced_atomically_and_leaves_no_temporary_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
):
    users.add_user(path, "ana", PASSWORD)
    before = path.read_text()
    inode = path.stat().st_ino
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def watching_replace(src: str, dst: Path) -> None:
        # The new content is complete in the temporary file before it takes the name.
        assert json.loads(Path(src).read_text())["users"][1]["name"] == "ben"
        assert path.read_text() == before
        replaced.append((src, str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", watching_replace)
    users.add_user(path, "ben", PASSWORD)
    assert replaced and replaced[0][1] == str(path)
    assert path.stat().st_ino != inode
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".dashboard-users.json.lock",
        "dashboard-users.json",
    ]


def test_users_file_keeps_the_old_content_when_a_write_fails(
    path: Path, monkeypatch: pytest.MonkeyPatch
):
    users.add_user(path, "ana", PASSWORD)
    before = path.read_text()

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    # Fails while the new content is being written, after the temp file exists.
    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        users.add_user(path, "ben", PASSWORD)
    assert path.read_text() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_verify_returns_the_user_when_the_password_is_right(path: Path):
    users.add_user(path, "ana", PASSWORD, Role.ADMIN)
    found = users.verify(users.read_users(path), "ana", PASSWORD)
    assert found is not None
    assert (found.name, found.role) == ("ana", Role.ADMIN)


def test_verify_returns_none_when_the_password_is_wrong(path: Path):
    users.add_user(path, "ana", PASSWORD)
    assert users.verify(users.read_users(path), "ana", "wrong password") is None


def test_verify_returns_none_and_still_hashes_when_the_user_is_unknown(
    path: Path, monkeypatch: pytest.MonkeyPatch
):
    users.add_user(path, "ana", PASSWORD)
    calls: list[str] = []
    real = users._scrypt

    def counting(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        calls.append(password)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(users, "_scrypt", counting)
    known = users.read_users(path)
    assert users.verify(known, "nobody", PASSWORD) is None
    # The same work as for a known user: one scrypt with today's parameters.
    assert calls == [PASSWORD]


def test_verify_returns_none_when_the_user_is_disabled(path: Path):
    users.add_user(path, "ana", PASSWORD)
    disabled = users.disable_user(path, "ana")
    assert disabled.disabled
    assert users.verify(users.read_users(path), "ana", PASSWORD) is None


def test_set_password_replaces_the_old_password(path: Path):
    users.add_user(path, "ana", PASSWORD)
    users.set_password(path, "ana", "a new password")
    known = users.read_users(path)
    assert users.verify(known, "ana", PASSWORD) is None
    assert users.verify(known, "ana", "a new password") is not None


def test_set_password_and_disable_raise_not_found_when_the_user_is_unknown(path: Path):
    with pytest.raises(NotFound):
        users.set_password(path, "nobody", PASSWORD)
    with pytest.raises(NotFound):
        users.disable_user(path, "nobody")


def test_add_user_refuses_an_existing_name_even_when_disabled(path: Path):
    users.add_user(path, "ana", PASSWORD)
    users.disable_user(path, "ana")
    with pytest.raises(AlreadyExists):
        users.add_user(path, "ana", PASSWORD)


@pytest.mark.parametrize("name", ["", "with space", "-dash", "a\nb", "x" * 65, "quo'te"])
def test_add_user_refuses_a_name_when_it_could_not_be_a_rater_id(path: Path, name: str):
    with pytest.raises(InvalidArgument, match="invalid user name"):
        users.add_user(path, name, PASSWORD)


def test_add_user_refuses_a_password_when_it_is_short(path: Path):
    with pytest.raises(InvalidArgument, match="at least 8"):
        users.add_user(path, "ana", "short")
    assert not path.exists()


def test_ensure_user_creates_the_user_with_a_random_password_once(path: Path):
    password = users.ensure_user(path, "admin", "admin")
    assert password is not None and len(password) >= 16
    found = users.verify(users.read_users(path), "admin", password)
    assert found is not None and found.role == Role.ADMIN
    assert users.ensure_user(path, "admin", Role.ADMIN) is None
    # The second call changed nothing: the first password still works.
    assert users.verify(users.read_users(path), "admin", password) is not None


def test_ensure_user_refuses_an_unknown_role(path: Path):
    with pytest.raises(InvalidArgument, match="unknown role"):
        users.ensure_user(path, "admin", "root")


def test_read_users_holds_none_when_the_file_is_absent(path: Path):
    assert users.read_users(path) == {}


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"format": 2, "users": []}', '{"format": 1, "users": [{}]}']
)
def test_read_users_says_which_file_when_it_is_not_a_users_file(path: Path, text: str):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=str(path)):
        users.read_users(path)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_locks_a_name_out_after_five_failures_within_the_window():
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        assert throttle.failed("ana") == 0
        clock.now += 10
    assert throttle.retry_after("ana") == 0
    assert throttle.failed("ana") == 30
    assert throttle.retry_after("ana") == pytest.approx(30)
    assert throttle.retry_after("ben") == 0  # per name
    clock.now += 29
    assert throttle.retry_after("ana") == pytest.approx(1)
    clock.now += 1
    assert throttle.retry_after("ana") == 0


def test_throttle_forgets_failures_when_they_are_older_than_the_window():
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        throttle.failed("ana")
    clock.now += 301
    assert throttle.failed("ana") == 0
    assert throttle.retry_after("ana") == 0


def test_throttle_forgets_failures_when_a_login_succeeds():
    throttle = LoginThrottle(clock=FakeClock())
    for _ in range(4):
        throttle.failed("ana")
    throttle.succeeded("ana")
    assert throttle.failed("ana") == 0


def test_throttle_keeps_at_most_max_names_when_flooded_with_names():
    throttle = LoginThrottle(clock=FakeClock())
    throttle.MAX_NAMES = 10
    for index in range(50):
        throttle.failed(f"name-{index}")
    assert len(throttle._failures) <= 11
