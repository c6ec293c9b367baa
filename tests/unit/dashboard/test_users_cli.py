"""``hearby dashboard-users``: add (prompt, stdin, generated), passwd, disable, list."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from dashboard import users
from dashboard.users import Role
from hearby import dashboard_users_cli
from hearby.cli import main

PASSWORD = "a long enough password"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "dashboard-users.json"


def _prompts(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    asked: list[str] = []
    replies = iter(answers)

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return next(replies)

    monkeypatch.setattr(dashboard_users_cli.getpass, "getpass", fake_getpass)
    return asked


def _verified(path: Path, name: str, password: str) -> users.User | None:
    return users.verify(users.read_users(path), name, password)


def test_add_asks_for_the_password_twice_and_stores_its_hash(
    path: Path, monkeypatch: pytest.MonkeyPatch
):
    asked = _prompts(monkeypatch, PASSWORD, PASSWORD)
    assert main(["dashboard-users", "--file", str(path), "add", "ana"]) == 0
    assert asked == ["password for ana: ", "again: "]
    user = _verified(path, "ana", PASSWORD)
    assert user is not None and user.role == Role.REVIEWER
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_add_changes_nothing_when_the_two_prompts_differ(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    _prompts(monkeypatch, PASSWORD, PASSWORD + "x")
    assert main(["dashboard-users", "--file", str(path), "add", "ana"]) == 1
    assert "differ" in capsys.readouterr().err
    assert users.read_users(path) == {}


def test_add_reads_the_password_from_stdin_when_asked(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["dashboard-users", "--file", str(path), "add", "bo", "--role", "admin"]
    assert main([*argv, "--password-stdin"]) == 0
    user = _verified(path, "bo", PASSWORD)
    assert user is not None and user.role == Role.ADMIN


def test_add_prints_a_generated_password_once_when_asked(
    path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["dashboard-users", "--file", str(path), "add", "cy", "--generate"]) == 0
    out, err = capsys.readouterr()
    password = out.strip()
    assert _verified(path, "cy", password) is not None
    assert "only time" in err


def test_add_refuses_an_existing_user_and_a_short_password(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    users.add_user(path, "ana", PASSWORD)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["dashboard-users", "--file", str(path), "add", "ana", "--password-stdin"]) == 1
    assert "exists already" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["dashboard-users", "--file", str(path), "add", "ben", "--password-stdin"]) == 1
    assert "at least 8" in capsys.readouterr().err


def test_passwd_replaces_the_password(path: Path, monkeypatch: pytest.MonkeyPatch):
    users.add_user(path, "ana", PASSWORD)
    _prompts(monkeypatch, "the new password", "the new password")
    assert main(["dashboard-users", "--file", str(path), "passwd", "ana"]) == 0
    assert _verified(path, "ana", PASSWORD) is None
    assert _verified(path, "ana", "the new password") is not None


def test_passwd_does_not_prompt_when_the_user_is_unknown(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    asked = _prompts(monkeypatch)
    assert main(["dashboard-users", "--file", str(path), "passwd", "nobody"]) == 1
    assert asked == []
    assert "no user 'nobody'" in capsys.readouterr().err


def test_disable_and_list_show_the_users_state(path: Path, capsys: pytest.CaptureFixture[str]):
    users.add_user(path, "ana", PASSWORD, Role.ADMIN)
    users.add_user(path, "ben", PASSWORD)
    assert main(["dashboard-users", "--file", str(path), "disable", "ben"]) == 0
    capsys.readouterr()
    assert main(["dashboard-users", "--file", str(path), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "role", "created", "state"]
    assert lines[1].split()[:2] == ["ana", "admin"] and lines[1].endswith("active")
    assert lines[2].split()[:2] == ["ben", "reviewer"] and lines[2].endswith("DISABLED")
    assert "hash" not in "\n".join(lines)


def test_the_users_file_defaults_to_hearby_dashboard_users_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HEARBY_DASHBOARD_USERS_FILE", str(path))
    assert main(["dashboard-users", "add", "ana", "--generate"]) == 0
    assert "ana" in users.read_users(path)
