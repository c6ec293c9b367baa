"""The dashboard's login gate: a login form until the browser session holds a user.

:func:`gate` runs at the top of ``app.py``, before the navigation, on every rerun. While
login is on (``HEARBY_AUTH=keys``, see :attr:`DashboardSettings.login_required`) it lets
pages run only for a session that logged in with a name and password from the users file
(:mod:`dashboard.users`); anything else sees the form and nothing of the pages.

The logged-in user lives in ``st.session_state``, so it ends when the browser tab closes
or reloads (Streamlit opens a new session then). The users file is read again on every
run, so a user disabled with ``hearby dashboard-users disable`` is logged out at their
next click, and a changed role applies at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard.settings import DashboardSettings
from dashboard.users import LoginThrottle, Role, User, read_users, verify
from services.common.errors import InvalidArgument

logger = logging.getLogger(__name__)

SESSION_KEY = "login_user"
# One text for an unknown name and a wrong password, so the form does not tell which
# names exist.
WRONG = "Unknown user or wrong password."


@dataclass(frozen=True)
class SessionUser:
    """Who is logged in to this browser session.

    Args:
        name: The login name; also the rater id of the ratings they save.
        role: What they may see and do.
    """

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Whether the user has the ``admin`` role."""
        return self.role == Role.ADMIN


@st.cache_resource(show_spinner=False)
def _throttle() -> LoginThrottle:
    # One per dashboard process, shared by all browser sessions: a per-session throttle
    # would be reset by opening a new tab.
    return LoginThrottle()


def current_user() -> SessionUser | None:
    """The user logged in to this session; None while nobody is (or login is off)."""
    return st.session_state.get(SESSION_KEY)


def _log_out() -> None:
    user = st.session_state.pop(SESSION_KEY, None)
    if user is not None:
        logger.info("dashboard logout: %s", user.name)


def gate(settings: DashboardSettings) -> bool:
    """Whether this run may show the pages; shows the login form when it may not.

    While login is on and nobody is logged in, this draws the login form (or how to
    create the first user) and returns False; the caller then renders no page. A
    logged-in user gets their name and a "Log out" button in the sidebar.

    Args:
        settings: Whether login is on, and where the users file is.

    Returns:
        True when login is off or a user is logged in (see :func:`current_user`).
    """
    if not settings.login_required:
        return True
    path = settings.users_file
    try:
        users = read_users(path)
    except InvalidArgument as exc:
        st.error(f"{exc.message}. Fix or recreate it with `hearby dashboard-users`.")
        return False
    user = current_user()
    if user is not None:
        known = users.get(user.name)
        if known is not None and not known.disabled:
            user = SessionUser(known.name, known.role)
            st.session_state[SESSION_KEY] = user
            _sidebar(user)
            return True
        logger.info("dashboard session of %s ended: the user is disabled or gone", user.name)
        del st.session_state[SESSION_KEY]
    if not users:
        _no_users(path)
    else:
        _form(users)
    return False


def _sidebar(user: SessionUser) -> None:
    st.sidebar.caption(f"Logged in as **{user.name}** ({user.role.value})")
    st.sidebar.button("Log out", key="login_logout", on_click=_log_out)


def _no_users(path: Path) -> None:
    """What to do when login is on but nobody may log in yet."""
    st.title("hearby dashboard")
    st.warning(
        f"Login is on (`HEARBY_AUTH=keys`), but no one may log in yet: the users file "
        f"`{path}` holds no users."
    )
    st.markdown(
        "Create a user on the machine the dashboard runs on, then reload this page:\n\n"
        f"    hearby dashboard-users --file {path} add NAME --role admin\n\n"
        "(`hearby up` creates an `admin` user itself and writes its password to "
        "`<data>/keys/dashboard-admin.password`.) For local development only, "
        "`HEARBY_AUTH=off` turns off both this login and the services' API keys."
    )


def _form(users: dict[str, User]) -> None:
    st.title("hearby dashboard")
    # Cleared on submit, so a typed password does not stay in the form.
    with st.form("login", clear_on_submit=True):
        name = st.text_input("User", key="login_name", autocomplete="username")
        password = st.text_input(
            "Password", type="password", key="login_password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        _attempt(users, name.strip(), password)


def _attempt(users: dict[str, User], name: str, password: str) -> None:
    """Checks one login; logs the session in (and reruns) or says why not."""
    if not name or not password:
        st.error("Enter your user name and your password.")
        return
    throttle = _throttle()
    wait = throttle.retry_after(name)
    if wait > 0:
        logger.warning("dashboard login of %r refused: locked for %.0f s more", name, wait)
        st.error(_locked(wait))
        return
    user = verify(users, name, password)
    if user is None:
        # The name is logged (repr: it is typed by anyone), never the password.
        logger.warning("dashboard login failed for user %r", name)
        locked = throttle.failed(name)
        st.error(WRONG)
        if locked > 0:
            st.error(_locked(locked))
        return
    throttle.succeeded(name)
    logger.info("dashboard login: %s (%s)", user.name, user.role.value)
    st.session_state[SESSION_KEY] = SessionUser(user.name, user.role)
    st.rerun()


def _locked(seconds: float) -> str:
    return (
        "Too many failed logins for this user: logins are refused for "
        f"{math.ceil(seconds)} s. Try again then."
    )
