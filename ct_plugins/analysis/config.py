"""Settings of one analysis run."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PROPERTIES = (
    "atomic_radius",
    "boiling_point",
    "melting_point",
    "electrical_conductivity",
    "ionization_energy",
)


class AnalysisError(ValueError):
    """Input the analysis cannot use (too few elements, bad settings, unknown property)."""


@dataclass(frozen=True)
class AnalysisConfig:
    """What to compute and how; every random step is seeded from ``seed``."""

    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    folds: int = 5
    iterations: int = 400  # CatBoost trees: small enough for a shared 2-core box
    depth: int = 4
    learning_rate: float = 0.05
    seed: int = 0
    k_min: int = 2
    k_max: int = 10
    min_cluster_fraction: float = 0.05  # a chosen k may not have a cluster smaller than this
    pca_max_components: int = 32
    shap_top: int = 5
    shap: bool = True

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise AnalysisError(f"--folds must be at least 2 (got {self.folds})")
        if self.iterations < 1:
            raise AnalysisError(f"--iterations must be positive (got {self.iterations})")
        if not 2 <= self.k_min <= self.k_max:
            raise AnalysisError(f"need 2 <= k_min <= k_max (got {self.k_min}, {self.k_max})")
        if not self.properties:
            raise AnalysisError("no properties selected")

    @property
    def min_elements(self) -> int:
        """Fewest rows a k-fold R² makes sense on: two held-out elements per fold."""
        return 2 * self.folds
