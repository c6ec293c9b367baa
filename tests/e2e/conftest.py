"""Fixtures of the end-to-end flows (helpers are in ``tests/e2e/support.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A temp dir for one flow (module)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
