"""The vector store's plain types: importable (with the client) without pymilvus."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["services.vectorstore.records", "services.vectorstore.client", "services.ingest.handlers"],
)
def test_importing_the_plain_types_and_their_users_does_not_load_pymilvus(module):
    # A fresh interpreter: this test process may have imported pymilvus already.
    probe = f"import sys, {module}; sys.exit('pymilvus' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=120).returncode == 0
