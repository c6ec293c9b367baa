"""Fixtures shared by the service unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_hearby_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removes every ``HEARBY_*`` variable, so a settings test sees only what it sets."""
    for name in [name for name in os.environ if name.startswith("HEARBY_")]:
        monkeypatch.delenv(name)
