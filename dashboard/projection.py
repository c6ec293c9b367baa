"""A 2-D view of a version's embedding space for the Metrics page: PCA by SVD, numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Projection:
    """Points projected onto their first two principal components.

    Args:
        points: (N, 2) coordinates along the first and second component.
        explained: (2,) share of the total variance each component explains, in [0, 1]
            (0 for a component the data does not have, e.g. with fewer than 3 points).
    """

    points: np.ndarray
    explained: np.ndarray


def pca_2d(vectors: np.ndarray) -> Projection:
    """Projects row vectors onto their two directions of largest variance.

    The signs of the components are fixed (each component's largest loading is
    positive), so the same embeddings always give the same picture.

    Args:
        vectors: (N, D) embeddings, one per row.

    Returns:
        The projection; fewer than two points or dimensions fill the missing axis with 0.

    Raises:
        ValueError: ``vectors`` is not two-dimensional.
    """
    if vectors.ndim != 2:
        raise ValueError(f"expected an (N, D) array, got shape {vectors.shape}")
    n = vectors.shape[0]
    points = np.zeros((n, 2))
    explained = np.zeros(2)
    if n < 2:
        return Projection(points, explained)
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    # centred = U S Vt; the rows of Vt are the principal directions, by falling variance.
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = min(2, vt.shape[0])
    directions = vt[:components]  # (components, D)
    strongest = np.argmax(np.abs(directions), axis=1)
    signs = np.sign(directions[np.arange(components), strongest])
    directions = directions * signs[:, None]
    points[:, :components] = centred @ directions.T
    variance = singular**2
    total = variance.sum()
    if total > 0:
        explained[:components] = variance[:components] / total
    return Projection(points, explained)
