"""The stack every dashboard flow runs against, started once for the package.

Two tiny versions (``dash-a``, ``dash-b``) with made-up locality profiles over a small
rendered catalog, a running 50/50 experiment between them, and the ``HEARBY_DASHBOARD_*``
variables that point the dashboard (in-process through ``streamlit.testing``, or as a
server) at it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from hearby.up import Stack
from services.control.client import ControlClient
from services.control.experiment_client import ExperimentClient
from services.control.experiments import Arm, Experiment
from tests.e2e.support import (
    CorpusTrack,
    count,
    render_corpus,
    running_stack,
    submit_all,
    wait_for,
    wait_ready,
)

APP = Path(__file__).resolve().parents[3] / "dashboard" / "app.py"
# A page can run on its own through streamlit.testing: AppTest.from_file(PAGES / "rate.py").
PAGES = APP.parent / "views"
# dash-old is there to be retired by a flow; the others stay READY.
VERSIONS = {"dash-a": 3, "dash-b": 4, "dash-old": 5}
EXPERIMENT = "dash-ab"
TRACKS = 24


def _profile(genre: float, key: float) -> list[dict[str, object]]:
    return [
        {"attribute": attribute, "k": k, "value": value, "chance": chance}
        for k in (5, 10)
        for attribute, value, chance in (
            ("genre", genre, 0.1),
            ("key", key, 0.08),
            ("tempo", 0.2, 0.07),
        )
    ]


LOCALITY = {"dash-a": _profile(0.7, 0.1), "dash-b": _profile(0.3, 0.5)}


@dataclass
class DashboardStack:
    """The running stack and what the flows need to know about it."""

    stack: Stack
    versions: tuple[str, ...]
    tracks: list[CorpusTrack]
    experiment: str

    @property
    def track_ids(self) -> list[str]:
        return [t.track_id for t in self.tracks]

    @property
    def env(self) -> dict[str, str]:
        """The dashboard's service addresses (HEARBY_DASHBOARD_*_ADDRESS)."""
        stack = self.stack
        return {
            "HEARBY_DASHBOARD_CONTROL_ADDRESS": stack.control,
            "HEARBY_DASHBOARD_VECTORSTORE_ADDRESS": stack.vectorstore,
            "HEARBY_DASHBOARD_RANKER_ADDRESS": stack.ranker,
            "HEARBY_DASHBOARD_CATALOG_ADDRESS": stack.catalog,
            "HEARBY_DASHBOARD_FEEDBACK_ADDRESS": stack.feedback,
            # Short, so a test of a dead dependency does not wait long for its message.
            "HEARBY_DASHBOARD_TIMEOUT_SECONDS": "5",
            "HEARBY_DASHBOARD_CATALOG_CACHE_SECONDS": "0",
        }


async def _fill(stack: Stack, tracks: list[CorpusTrack]) -> None:
    await wait_ready(stack, list(VERSIONS))
    await submit_all(stack, tracks)

    async def all_stored() -> bool:
        return all([await count(stack, v) == len(tracks) for v in VERSIONS])

    await wait_for(all_stored, 300, f"{len(tracks)} tracks in every version")
    async with grpc.aio.insecure_channel(stack.control) as channel:
        await ControlClient(channel).set_default_version("dash-a")
        experiments = ExperimentClient(channel)
        arms = (Arm("a", "dash-a", 0.5), Arm("b", "dash-b", 0.5))
        await experiments.create(Experiment(EXPERIMENT, "dashboard flows", arms))
        await experiments.start(EXPERIMENT)


@pytest.fixture(scope="package")
def dashboard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardStack]:
    tmp = tmp_path_factory.mktemp("dashboard")
    tracks = render_corpus(tmp / "corpus", TRACKS, seed=11)
    for stack in running_stack(tmp, VERSIONS, workers=2, locality=LOCALITY):
        asyncio.run(_fill(stack, tracks))
        yield DashboardStack(stack, tuple(VERSIONS), tracks, EXPERIMENT)


@pytest.fixture
def dashboard_env(
    dashboard_stack: DashboardStack, monkeypatch: pytest.MonkeyPatch
) -> DashboardStack:
    """Points DashboardSettings (read by the pages) at the stack."""
    for name, value in dashboard_stack.env.items():
        monkeypatch.setenv(name, value)
    return dashboard_stack
