"""hearby's dashboard: compare encoder versions' neighbourhoods, rate them blind, review.

Run it with ``hearby dashboard`` (or as part of ``hearby up``); it reaches the services at
the addresses in :class:`dashboard.settings.DashboardSettings`. Each page is a script under
``views/``; this one only sets up the page, the login gate (:mod:`dashboard.login`: while
``HEARBY_AUTH=keys``, no page runs for a session that has not logged in) and the
navigation.

The folder is not called ``pages/`` (as STYLE.md's layout has it) on purpose: Streamlit
still scans a ``pages/`` folder next to the entry script, and a deep link such as
``/compare`` then showed its automatic page list ("app, compare, metrics, ...") in the
sidebar instead of the navigation below (seen with Streamlit 1.67).
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from dashboard import login
from dashboard.settings import DashboardSettings
from services.common.logging import configure_logging

_PAGES = Path(__file__).parent / "views"


@st.cache_resource(show_spinner=False)
def _logging() -> None:
    # `python -m dashboard` configures logging and then execs Streamlit, which starts with
    # none for hearby's loggers: without this, logins would go unlogged. A process that
    # has handlers already (pytest, an embedding app) keeps its own.
    if not logging.getLogger().handlers:
        configure_logging("INFO", "text")


_logging()
st.set_page_config(page_title="hearby", page_icon=":headphones:", layout="wide")
# Reviewers and admins see the same pages: none of them changes versions or experiments
# (those are CLI commands with an admin API key). A page that does must check
# login.current_user().is_admin, or be listed here only for admins.
allowed = login.gate(DashboardSettings())
navigation = st.navigation(
    [
        # The default page is served at "/" only; the landing page takes that place so
        # that /compare is a link that works like the others.
        st.Page(_PAGES / "overview.py", title="Overview", url_path="overview", default=True),
        st.Page(_PAGES / "compare.py", title="Compare", url_path="compare"),
        st.Page(_PAGES / "rate.py", title="Rate (blind)", url_path="rate"),
        st.Page(_PAGES / "review.py", title="Review", url_path="review"),
        st.Page(_PAGES / "metrics.py", title="Metrics", url_path="metrics"),
    ],
    # Declared even behind the login form (but hidden and not run), so that a deep link
    # such as /compare?a=...&seed=... keeps its page and arguments through the login;
    # without a navigation in the run, Streamlit sent the browser to "/".
    position="sidebar" if allowed else "hidden",
)
if allowed:
    navigation.run()
