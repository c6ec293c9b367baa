"""The login gate in front of every page, run in-process (AppTest) with HEARBY_AUTH=keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import users
from dashboard.login import WRONG
from dashboard.users import Role
from tests.unit.dashboard.views.conftest import APP, FakeBackend, version

PASSWORD = "ana's long password"


@pytest.fixture
def users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Login on (tests/conftest.py turns it off for the session), users file in tmp_path."""
    path = tmp_path / "keys" / "dashboard-users.json"
    monkeypatch.setenv("HEARBY_AUTH", "keys")
    monkeypatch.setenv("HEARBY_DASHBOARD_USERS_FILE", str(path))
    # The throttle is one per process (st.cache_resource): start each test with a fresh one.
    st.cache_resource.clear()
    yield path
    st.cache_resource.clear()


@pytest.fixture
def ana(users_file: Path) -> Path:
    users.add_user(users_file, "ana", PASSWORD, Role.REVIEWER)
    return users_file


def _start(page: str = "") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def _log_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _on_login_form(at: AppTest) -> bool:
    keys = {t.key for t in at.text_input}
    return {"login_name", "login_password"} <= keys


@pytest.mark.parametrize("page", ["", "views/overview.py", "views/rate.py", "views/review.py"])
def test_login_shows_only_the_form_when_nobody_is_logged_in(
    ana: Path, fake_backend: FakeBackend, page: str
):
    fake_backend.versions_ = [version("v1")]
    at = _start(page)
    assert _on_login_form(at)
    assert [t.value for t in at.title] == ["hearby dashboard"]
    # Nothing of any page: no versions table, no subheaders, no metrics, no logout.
    assert not at.dataframe
    assert not at.subheader
    assert not at.metric
    assert not at.sidebar.button
    assert not _errors(at)


def test_login_refuses_a_wrong_password_with_the_same_message_as_an_unknown_user(
    ana: Path, fake_backend: FakeBackend
):
    at = _log_in(_start(), "ana", "not the password")
    assert _errors(at) == [WRONG]
    assert _on_login_form(at)
    at = _log_in(at, "nobody", PASSWORD)
    assert _errors(at) == [WRONG]
    assert not at.dataframe


def test_login_logs_the_name_but_never_the_password_when_it_fails(
    ana: Path, fake_backend: FakeBackend, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="dashboard.login"):
        _log_in(_start(), "ana", "a secret guess")
    messages = [r.getMessage() for r in caplog.records if r.name == "dashboard.login"]
    assert messages == ["dashboard login failed for user 'ana'"]
    assert "a secret guess" not in caplog.text


def test_login_shows_the_overview_when_the_password_is_right(ana: Path, fake_backend: FakeBackend):
    fake_backend.versions_ = [version("v1")]
    at = _log_in(_start(), "ana", PASSWORD)
    assert not _on_login_form(at)
    assert "Encoder versions" in [s.value for s in at.subheader]
    assert list(at.dataframe[0].value["version"]) == ["v1"]
    assert "Logged in as **ana** (reviewer)" in [c.value for c in at.sidebar.caption]


def test_login_opens_the_linked_page_when_a_deep_link_asked_for_one(
    ana: Path, fake_backend: FakeBackend
):
    at = _start("views/review.py")
    assert _on_login_form(at)
    at = _log_in(at, "ana", PASSWORD)
    assert [t.value for t in at.title] == ["Review ratings"]


def test_login_makes_the_user_name_the_rater_id_on_the_rate_page(
    ana: Path, fake_backend: FakeBackend
):
    fake_backend.versions_ = [version("v1"), version("v2")]
    at = _log_in(_start(), "ana", PASSWORD)
    at.switch_page("views/rate.py").run()
    assert not at.exception, at.exception
    assert "rate_rater" not in {t.key for t in at.text_input}
    assert any("Rating as **ana**" in c.value for c in at.caption)
    # Past the rater id: the version pickers and the hint to start a trial.
    assert at.selectbox(key="rate_a").value == "v1"


def test_rate_page_asks_for_a_rater_id_when_login_is_off(fake_backend: FakeBackend):
    fake_backend.versions_ = [version("v1"), version("v2")]
    at = _start("views/rate.py")
    assert at.text_input(key="rate_rater").value == ""
    assert not _on_login_form(at)


def test_login_returns_to_the_form_when_the_user_logs_out(ana: Path, fake_backend: FakeBackend):
    at = _log_in(_start(), "ana", PASSWORD)
    at.sidebar.button(key="login_logout").click().run()
    assert _on_login_form(at)
    assert not at.dataframe
    # And a page switch after logging out shows the form too, not the page.
    at.switch_page("views/review.py").run()
    assert _on_login_form(at)
    assert not at.metric


def test_login_locks_the_name_out_after_five_failures_whatever_the_password(
    ana: Path, fake_backend: FakeBackend
):
    at = _start()
    for attempt in range(4):
        at = _log_in(at, "ana", f"guess {attempt}")
        assert _errors(at) == [WRONG]
    at = _log_in(at, "ana", "guess 4")
    assert _errors(at)[0] == WRONG
    assert "Too many failed logins for this user" in _errors(at)[1]
    at = _log_in(at, "ana", PASSWORD)
    assert len(_errors(at)) == 1
    assert "Too many failed logins for this user" in _errors(at)[0]
    assert "30 s" in _errors(at)[0]
    assert _on_login_form(at)
    # Another name is not locked out by ana's failures.
    users.add_user(ana, "ben", PASSWORD)
    at = _log_in(at, "ben", PASSWORD)
    assert not _on_login_form(at)


def test_login_ends_the_session_when_the_user_is_disabled(ana: Path, fake_backend: FakeBackend):
    at = _log_in(_start(), "ana", PASSWORD)
    assert not _on_login_form(at)
    users.disable_user(ana, "ana")
    at.run()
    assert _on_login_form(at)
    at = _log_in(at, "ana", PASSWORD)
    assert _errors(at) == [WRONG]


def test_login_applies_a_changed_role_when_the_file_changes(ana: Path, fake_backend: FakeBackend):
    at = _log_in(_start(), "ana", PASSWORD)
    rewritten = {
        name: (user if name != "ana" else type(user)(name, Role.ADMIN, user.password))
        for name, user in users.read_users(ana).items()
    }
    users.write_users(ana, rewritten.values())
    at.run()
    assert "Logged in as **ana** (admin)" in [c.value for c in at.sidebar.caption]


def test_login_says_how_to_create_a_user_when_there_is_no_users_file(
    users_file: Path, fake_backend: FakeBackend
):
    at = _start()
    assert not _on_login_form(at)
    assert "no one may log in yet" in at.warning[0].value
    help_text = "\n".join(m.value for m in at.markdown)
    assert f"hearby dashboard-users --file {users_file} add NAME --role admin" in help_text
    assert "HEARBY_AUTH=off" in help_text
    assert not at.dataframe


def test_login_shows_an_error_not_a_traceback_when_the_users_file_is_broken(
    users_file: Path, fake_backend: FakeBackend
):
    users_file.parent.mkdir(parents=True)
    users_file.write_text("{not json")
    at = _start()
    assert str(users_file) in _errors(at)[0]
    assert not _on_login_form(at)
    assert not at.dataframe
