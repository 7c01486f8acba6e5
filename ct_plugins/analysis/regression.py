"""Reverse prediction: element property from its embedding row, CatBoost, k-fold CV, SHAP."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ct_plugins.analysis.config import AnalysisConfig
from ct_plugins.analysis.properties import PropertyValues
from ct_plugins.tables import EmbeddingTable


@dataclass(frozen=True)
class PropertyData:
    """Rows of one table that have a value for one property."""

    values: PropertyValues
    elements: list[str]
    x: np.ndarray
    y: np.ndarray  # transformed target
    missing: list[str]  # table elements without a property value


@dataclass
class PropertyFit:
    data: PropertyData
    fold_r2: list[float]
    fold_mae: list[float]
    pooled_r2: float  # R² of all out-of-fold predictions together
    oof_prediction: np.ndarray
    shap_values: np.ndarray | None = None
    importance: list[tuple[int, float]] = field(default_factory=list)  # (dim, mean |SHAP|)

    @property
    def r2_mean(self) -> float:
        return float(np.mean(self.fold_r2))

    @property
    def r2_std(self) -> float:
        return float(np.std(self.fold_r2))


def property_data(table: EmbeddingTable, values: PropertyValues) -> PropertyData:
    present = [e for e in table.elements if values.target(e) is not None]
    missing = [e for e in table.elements if values.target(e) is None]
    x = table.rows(present) if present else np.empty((0, table.dim), np.float32)
    y = np.array([values.target(e) for e in present], dtype=np.float64)
    return PropertyData(values, present, x, y, missing)


def _model(config: AnalysisConfig):
    from catboost import CatBoostRegressor

    return CatBoostRegressor(
        iterations=config.iterations,
        depth=config.depth,
        learning_rate=config.learning_rate,
        random_seed=config.seed,
        thread_count=1,
        verbose=False,
        allow_writing_files=False,
    )


def cross_validate(data: PropertyData, config: AnalysisConfig) -> PropertyFit:
    """R² on held-out elements only: each fold's model never sees its test rows."""
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.model_selection import KFold

    folds = KFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    oof = np.empty_like(data.y)
    fold_r2, fold_mae = [], []
    for train, test in folds.split(data.x):
        model = _model(config).fit(data.x[train], data.y[train])
        oof[test] = model.predict(data.x[test])
        fold_r2.append(float(r2_score(data.y[test], oof[test])))
        fold_mae.append(float(mean_absolute_error(data.y[test], oof[test])))
    return PropertyFit(data, fold_r2, fold_mae, float(r2_score(data.y, oof)), oof)


def add_shap(fit: PropertyFit, config: AnalysisConfig) -> None:
    """SHAP of a model fitted on all rows: which embedding dimensions carry the property."""
    import shap

    model = _model(config).fit(fit.data.x, fit.data.y)
    values = np.asarray(shap.TreeExplainer(model).shap_values(fit.data.x))
    mean_abs = np.abs(values).mean(axis=0)
    order = np.argsort(-mean_abs)[: config.shap_top]
    fit.shap_values = values
    fit.importance = [(int(i), float(mean_abs[i])) for i in order]
