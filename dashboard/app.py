"""hearby's dashboard: compare encoder versions' neighbourhoods, rate them blind, review.

Run it with ``hearby dashboard`` (or as part of ``hearby up``); it reaches the services at
the addresses in :class:`dashboard.settings.DashboardSettings`. Each page is a script under
``views/``; this one only sets up the page and the navigation.

The folder is not called ``pages/`` (as STYLE.md's layout has it) on purpose: Streamlit
still scans a ``pages/`` folder next to the entry script, and a deep link such as
``/compare`` then showed its automatic page list ("app, compare, metrics, ...") in the
sidebar instead of the navigation below (seen with Streamlit 1.67).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="hearby", page_icon=":headphones:", layout="wide")
navigation = st.navigation(
    [
        # The default page is served at "/" only; the landing page takes that place so
        # that /compare is a link that works like the others.
        st.Page(_PAGES / "overview.py", title="Overview", url_path="overview", default=True),
        st.Page(_PAGES / "compare.py", title="Compare", url_path="compare"),
        st.Page(_PAGES / "rate.py", title="Rate (blind)", url_path="rate"),
        st.Page(_PAGES / "review.py", title="Review", url_path="review"),
        st.Page(_PAGES / "metrics.py", title="Metrics", url_path="metrics"),
    ]
)
navigation.run()
