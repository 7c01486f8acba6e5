"""Interpretability analysis of element embedding tables (CT-UAE paper, section II.2.4).

Per table: PCA, a clustered heatmap, k-means with a periodic-table plot, reverse prediction of
element properties with CatBoost (k-fold R² on held-out elements) and SHAP importances. Across
tables: a side-by-side R² comparison. Entry point: ``ct analyze`` (see :mod:`.plugin`).
"""

from ct_plugins.analysis.config import AnalysisConfig, AnalysisError

__all__ = ["AnalysisConfig", "AnalysisError"]
