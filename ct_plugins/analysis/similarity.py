"""Which tables are alike: a Mantel comparison of their element-distance matrices.

Two tables are compared over the elements both cover: each gives a matrix of Euclidean
distances between its standardised rows, and the Mantel statistic is the Spearman correlation
of the two matrices' upper triangles. Its p-value comes from permuting one table's element
labels (the standard Mantel test), so "alike" is judged against chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ct_plugins.analysis.structure import standardize
from ct_plugins.tables import EmbeddingTable

MIN_SHARED = 10  # fewer shared elements give no meaningful correlation


@dataclass(frozen=True)
class MantelResult:
    r: float  # Spearman correlation of the two distance matrices
    p_value: float  # one-sided, from label permutations
    shared_elements: int


def distance_matrix(rows: np.ndarray) -> np.ndarray:
    """Euclidean distances between standardised rows."""
    x = standardize(rows)
    squared = (x * x).sum(1)
    return np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0.0))


def mantel(a: EmbeddingTable, b: EmbeddingTable, permutations: int = 999, seed: int = 0) -> MantelResult:
    """Mantel test of two tables over their shared elements."""
    shared = [e for e in a.elements if e in b]
    if len(shared) < MIN_SHARED:
        return MantelResult(float("nan"), float("nan"), len(shared))
    da, db = distance_matrix(a.rows(shared)), distance_matrix(b.rows(shared))
    upper = np.triu_indices(len(shared), 1)
    ra, rb = _ranks(da[upper]), _ranks(db[upper])
    observed = _pearson(ra, rb)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        order = rng.permutation(len(shared))
        exceed += _pearson(ra, _ranks(db[order][:, order][upper])) >= observed
    return MantelResult(float(observed), (exceed + 1) / (permutations + 1), len(shared))


def similarity_matrix(tables: list[EmbeddingTable], permutations: int = 199) -> dict:
    """Mantel r (and p, shared elements) for every pair of tables, JSON-ready."""
    names = [t.name for t in tables]
    result = {"tables": names, "r": {}, "p_value": {}, "shared_elements": {}}
    for i, first in enumerate(tables):
        for second in tables[i:]:
            found = mantel(first, second, permutations) if first is not second else MantelResult(1.0, 0.0, len(first))
            for x, y in ((first.name, second.name), (second.name, first.name)):
                result["r"].setdefault(x, {})[y] = round(found.r, 4)
                result["p_value"].setdefault(x, {})[y] = round(found.p_value, 4)
                result["shared_elements"].setdefault(x, {})[y] = found.shared_elements
    return result


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])
