"""Overview: the app's landing page: what is running, which versions exist, where to go.

It lives at the root URL, so that every other page keeps its own URL (``/compare``,
``/rate``, ...): Streamlit serves the default page at ``/`` only.
"""

from __future__ import annotations

import streamlit as st

from dashboard import widgets
from dashboard.queries import ServiceError

st.title("hearby dashboard")
st.markdown(
    "Design what *similar* means: each encoder version groups tracks by different "
    "properties (key, tempo, genre, instrument, ...). **Compare** two versions' neighbours "
    "of a seed, **rate** them blind, **review** what raters preferred, and see each "
    "version's **metrics** (offline locality, the online A/B report, an embedding map)."
)
backend = widgets.backend()
with widgets.guarded():
    versions = backend.versions(ready_only=False)
if not versions:
    st.info("No encoder version is registered yet: publish one with `hearby publish`.")
st.subheader("Encoder versions")
st.dataframe(
    [
        {
            "version": v.name,
            "status": v.status.name,
            "recipe": v.recipe,
            "default": "yes" if v.is_default else "",
            "dimension": v.dimension,
            "backfill": f"{v.backfill_done}/{v.backfill_total}",
            "error": v.error,
        }
        for v in versions
    ],
    hide_index=True,
)
st.subheader("Catalog")
try:
    status = backend.ingest_status()
    tracks = len(backend.tracks())
except ServiceError as exc:
    st.error(str(exc))
else:
    st.markdown(
        f"{tracks} tracks · ingest queue: {status.lag} waiting, {status.pending} in work, "
        f"{status.dead_letters} dead letters · {len(status.consumers)} workers"
    )
    if status.dead_letters:
        st.warning(
            "Some submissions could not be ingested; see them with "
            "`python -m services.catalog.client dead-letters`."
        )
