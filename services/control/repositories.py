"""Finding published versions across several Triton model repositories.

hearby serves more than one repository at once (bundled versions in ``models/``, published
ones in ``var/model_repository``; see ``EmbedderSettings.model_repositories``), so every
lookup by name searches them in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.embedder.model_repository import list_versions, read_manifest


def find_manifest(repositories: Iterable[Path], name: str) -> tuple[Path, dict[str, Any]]:
    """A version's manifest from the first model repository that holds the version.

    Args:
        repositories: Model repositories in order of precedence (bundled first).
        name: Version name.

    Returns:
        The repository that holds it, and its manifest.

    Raises:
        NotFound: No repository holds it; the message names every repository searched.
    """
    searched = list(repositories)
    for repository in searched:
        with contextlib.suppress(NotFound):
            return repository, read_manifest(repository, name)
    where = " or ".join(str(r) for r in searched) or "(none configured)"
    raise NotFound(
        f"version {name!r} is not in the model repository {where}; run `hearby publish` first"
    )


def repository_versions(repositories: Iterable[Path]) -> dict[str, Path]:
    """Every version in the repositories -> the repository that holds it, sorted by name.

    A name held by two repositories maps to the first (Triton refuses to load such a
    version; :func:`duplicate_versions` names them).
    """
    found: dict[str, Path] = {}
    for repository in repositories:
        for name in list_versions(repository):
            found.setdefault(name, repository)
    return dict(sorted(found.items()))


def duplicate_versions(repositories: Iterable[Path]) -> dict[str, list[Path]]:
    """Version names held by more than one repository -> those repositories."""
    holders: dict[str, list[Path]] = {}
    for repository in repositories:
        for name in list_versions(repository):
            holders.setdefault(name, []).append(repository)
    return {name: paths for name, paths in sorted(holders.items()) if len(paths) > 1}
