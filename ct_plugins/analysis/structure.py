"""Unsupervised structure of a table: PCA and a k-means scan with the k chosen by silhouette.

Both run on the table standardised per dimension, so dimensions with large units (Magpie's
melting point in K next to electronegativity) do not dominate the distances. k is the one with the
largest mean silhouette among the k whose smallest cluster holds at least 5% of the elements:
a lone outlier element (SkipAtom's Kr) otherwise wins the silhouette with a "cluster" of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ct_plugins.analysis.config import AnalysisConfig, AnalysisError


@dataclass(frozen=True)
class PCAResult:
    explained_ratio: np.ndarray  # per component
    coords: np.ndarray  # n × n_components

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.explained_ratio)

    def components_for(self, fraction: float) -> int | None:
        """Fewest components explaining ``fraction`` of the variance; None if the kept ones do not."""
        reached = np.nonzero(self.cumulative >= fraction - 1e-9)[0]
        return int(reached[0] + 1) if reached.size else None


@dataclass(frozen=True)
class KMeansScan:
    ks: list[int]
    inertia: list[float]
    silhouette: list[float]
    labels: dict[int, np.ndarray]  # k → cluster of each element
    min_cluster_size: int

    @property
    def eligible(self) -> list[int]:
        """The k without a cluster smaller than ``min_cluster_size``."""
        return [k for k in self.ks if np.bincount(self.labels[k]).min() >= self.min_cluster_size]

    @property
    def best_k(self) -> int:
        """Largest silhouette among eligible k (all k when none is eligible)."""
        candidates = self.eligible or self.ks
        return max(candidates, key=lambda k: self.silhouette[self.ks.index(k)])


def standardize(matrix: np.ndarray) -> np.ndarray:
    std = matrix.std(axis=0)
    return (matrix - matrix.mean(axis=0)) / np.where(std > 0, std, 1.0)


def run_pca(x: np.ndarray, config: AnalysisConfig) -> PCAResult:
    from sklearn.decomposition import PCA

    n_components = min(config.pca_max_components, x.shape[0], x.shape[1])
    pca = PCA(n_components=n_components, random_state=config.seed)
    coords = pca.fit_transform(x)
    return PCAResult(pca.explained_variance_ratio_, coords)


def scan_kmeans(x: np.ndarray, config: AnalysisConfig) -> KMeansScan:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    k_max = min(config.k_max, x.shape[0] - 1)
    if k_max < config.k_min:
        raise AnalysisError(f"k-means needs more than {config.k_min} elements (got {x.shape[0]})")
    ks = list(range(config.k_min, k_max + 1))
    inertia, silhouette, labels = [], [], {}
    for k in ks:
        model = KMeans(n_clusters=k, n_init=10, random_state=config.seed).fit(x)
        inertia.append(float(model.inertia_))
        silhouette.append(float(silhouette_score(x, model.labels_)))
        labels[k] = model.labels_
    smallest = max(2, int(np.ceil(config.min_cluster_fraction * x.shape[0])))
    return KMeansScan(ks, inertia, silhouette, labels, smallest)
