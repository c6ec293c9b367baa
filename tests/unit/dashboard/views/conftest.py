"""An in-memory backend for running the dashboard's pages in-process (AppTest)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import streamlit as st

from dashboard import widgets
from dashboard.queries import ServiceError
from dashboard.settings import DashboardSettings
from services.catalog.tracks import IngestStatus, TrackRecord
from services.common.errors import NotFound
from services.control.ab_report import Report
from services.control.experiments import Experiment
from services.control.registry import LocalityScore, Version, VersionStatus
from services.feedback.ratings import Rating

APP = Path(__file__).resolve().parents[4] / "dashboard" / "app.py"
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def version(name: str, locality: tuple[LocalityScore, ...] = (), **kw: object) -> Version:
    return Version(
        name=name,
        status=VersionStatus.READY,
        recipe="ts",
        dimension=4,
        sample_rate=22050,
        window_seconds=3.0,
        locality=locality,
        manifest={},
        created_at=T0,
        updated_at=T0,
        **kw,
    )


def track(track_id: str, **metadata: object) -> TrackRecord:
    return TrackRecord(track_id, "0" * 64, f"/x/{track_id}", "audio/flac", 6.0, T0, metadata)


@dataclass
class FakeBackend:
    """The Backend methods the pages call, answered from memory."""

    versions_: list[Version] = field(default_factory=list)
    tracks_: list[TrackRecord] = field(default_factory=list)
    ratings_: list[Rating] = field(default_factory=list)
    experiments_: list[Experiment] = field(default_factory=list)
    reports: dict[str, Report] = field(default_factory=dict)
    embeddings_: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    settings: DashboardSettings = field(default_factory=DashboardSettings)

    def versions(self, ready_only: bool = True) -> list[Version]:
        return list(self.versions_)

    def version(self, name: str) -> Version:
        for known in self.versions_:
            if known.name == name:
                return known
        raise ServiceError("control", "fake", NotFound(f"version {name!r} is not registered"))

    def tracks(self) -> list[TrackRecord]:
        return list(self.tracks_)

    def ingest_status(self) -> IngestStatus:
        return IngestStatus(len(self.tracks_), 0, 0, 0, [])

    def ratings(self, version_a: str = "", version_b: str = "") -> list[Rating]:
        return [r for r in self.ratings_ if not version_a or r.compares(version_a, version_b)]

    def experiments(self) -> list[Experiment]:
        return list(self.experiments_)

    def report(self, name: str) -> Report:
        return self.reports[name]

    def embeddings(self, version: str, ids: list[str]) -> dict[str, np.ndarray]:
        stored = self.embeddings_.get(version, {})
        return {i: stored[i] for i in ids if i in stored}


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    """A FakeBackend the pages get from ``widgets.backend()``."""
    fake = FakeBackend()
    monkeypatch.setattr(widgets, "backend", lambda: fake)
    # Cached page data (the embedding map) would otherwise leak between tests.
    st.cache_data.clear()
    return fake
