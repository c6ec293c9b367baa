"""Finding versions across several model repositories (bundled and published)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import NotFound
from services.control.repositories import duplicate_versions, find_manifest, repository_versions


def _version(repository: Path, name: str, recipe: str = "none") -> None:
    (repository / name).mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(f'name: "{name}"\n')
    (repository / name / "manifest.json").write_text(json.dumps({"name": name, "recipe": recipe}))


def test_find_manifest_searches_the_repositories_in_order(tmp_path):
    bundled, published = tmp_path / "models", tmp_path / "published"
    _version(bundled, "none")
    _version(published, "ts-ps", recipe="ts+ps")
    assert find_manifest([bundled, published], "ts-ps") == (
        published,
        {"name": "ts-ps", "recipe": "ts+ps"},
    )
    assert find_manifest([bundled, published], "none")[0] == bundled


def test_find_manifest_names_every_repository_searched_when_absent(tmp_path):
    with pytest.raises(NotFound, match=r"not in the model repository .*/a or .*/b"):
        find_manifest([tmp_path / "a", tmp_path / "b"], "v9")


def test_repository_versions_lists_both_and_reports_duplicates(tmp_path):
    bundled, published = tmp_path / "models", tmp_path / "published"
    _version(bundled, "none")
    _version(published, "ts-ps")
    _version(published, "none")
    assert repository_versions([bundled, published, tmp_path / "missing"]) == {
        "none": bundled,
        "ts-ps": published,
    }
    assert duplicate_versions([bundled, published]) == {"none": [bundled, published]}
