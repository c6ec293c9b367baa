"""Publish manifests shaped like the ones ``hearby publish`` writes, for control tests."""

from __future__ import annotations

import json
from typing import Any

LOCALITY = [
    {"attribute": "tempo", "k": 10, "value": 0.62, "chance": 0.11},
    {"attribute": "genre", "k": 10, "value": 0.48, "chance": 0.2},
]


def manifest_dict(version: str, /, **overrides: Any) -> dict[str, Any]:
    """A valid manifest for ``version``; ``overrides`` replace (or, as None, drop) keys."""
    manifest: dict[str, Any] = {
        "name": version,
        "recipe": "ts+ps",
        "sample_rate": 16000,
        "window_samples": 48000,
        "dimension": 128,
        "locality": LOCALITY,
        "corpus_manifest_sha256": "ab" * 32,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "created": "2026-11-20T10:00:00+00:00",
        "config": {"recipe": "ts+ps", "model": {"embedding_dim": 128}},
    }
    for key, value in overrides.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    return manifest


def manifest_json(version: str, /, **overrides: Any) -> str:
    """:func:`manifest_dict` as JSON, formatted the way ``hearby publish`` writes it."""
    return json.dumps(manifest_dict(version, **overrides), indent=2, sort_keys=True)
