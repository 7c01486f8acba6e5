"""Run the analysis of one or more tables and write figures, report.json and report.md."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ct_plugins.analysis import plots
from ct_plugins.analysis.config import AnalysisConfig, AnalysisError
from ct_plugins.analysis.properties import PropertyValues, load_property
from ct_plugins.analysis.regression import PropertyFit, add_shap, cross_validate, property_data
from ct_plugins.analysis.report import comparison, write_json, write_markdown
from ct_plugins.analysis.similarity import similarity_matrix
from ct_plugins.analysis.structure import run_pca, scan_kmeans, standardize
from ct_plugins.tables import EmbeddingTable

PAPER_K = 3  # the paper reports three element clusters; always recorded next to the chosen k


@dataclass(frozen=True)
class TableResult:
    summary: dict  # JSON-ready numbers
    folder: Path


def folder_name(table_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", table_name)


def check_table(table: EmbeddingTable, config: AnalysisConfig) -> None:
    if len(table) < config.min_elements:
        raise AnalysisError(
            f"table {table.name!r} has {len(table)} elements; {config.folds}-fold cross-validation "
            f"needs at least {config.min_elements} (lower --folds or use a larger table)"
        )


def analyze_tables(tables: list[EmbeddingTable], out: Path, config: AnalysisConfig,
                   force: bool = False) -> dict:
    """Every table in turn, then the comparison; returns the content of ``out/report.json``.

    A table already analysed in ``out`` with the same content (sha256) and settings is reused
    unless ``force``: an interrupted run resumes, and adding a table redoes only that table.
    """
    from tqdm.auto import tqdm

    for table in tables:  # fail before minutes of work, not after
        check_table(table, config)
    started = time.time()
    values = {key: load_property(key) for key in config.properties}
    out.mkdir(parents=True, exist_ok=True)
    results, reused = {}, []
    for table in tqdm(tables, desc="tables", unit="table"):
        folder = out / folder_name(table.name)
        done = None if force else previous_result(table, folder, config)
        if done:
            reused.append(table.name)
        results[table.name] = done or analyze_table(table, values, folder, config)
    report = {
        "config": asdict(config),
        "properties": {k: _property_summary(v) for k, v in values.items()},
        "tables": {name: r.summary for name, r in results.items()},
        "comparison": comparison(results, values),
        "similarity": similarity_matrix(tables),
        "elapsed_seconds": round(time.time() - started, 1),
        "reused_tables": reused,  # analysed by an earlier run with identical table and settings
        "environment": _environment(),
    }
    write_json(out / "report.json", report)
    write_json(out / "comparison.json", report["comparison"])
    write_markdown(out, report, {name: r.folder for name, r in results.items()})
    plots.plot_comparison(
        {n: {p: (c["r2_mean"], c["r2_std"]) for p, c in row.items()} for n, row in report["comparison"]["r2"].items()},
        {k: v.spec.label for k, v in values.items()},
        {k: v.spec.paper_r2 for k, v in values.items()},
        out / "comparison_r2.png",
    )
    plots.plot_similarity(report["similarity"], out / "similarity.png")
    return report


def previous_result(table: EmbeddingTable, folder: Path, config: AnalysisConfig) -> TableResult | None:
    path = folder / "report.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = summary.get("sha256") == table.sha256() and summary.get("config") == _jsonable(asdict(config))
    figures_there = all((folder / name).is_file() for name in summary.get("figures", {}).values())
    return TableResult(summary, folder) if same and figures_there else None


def _jsonable(value: dict) -> dict:
    return json.loads(json.dumps(value))


def analyze_table(table: EmbeddingTable, values: dict[str, PropertyValues], folder: Path,
                  config: AnalysisConfig) -> TableResult:
    from tqdm.auto import tqdm

    check_table(table, config)
    started = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    x = standardize(table.matrix.astype(np.float64))
    pca, scan = run_pca(x, config), scan_kmeans(x, config)
    elements, title = list(table.elements), f"{table.name} ({len(table)} elements × {table.dim})"
    best = scan.labels[scan.best_k]
    figures = {
        "pca": plots.plot_pca(pca, elements, best, f"{title}: PCA", folder / "pca.png"),
        "heatmap": plots.plot_heatmap(x, elements, f"{title}: clustered heatmap", folder / "heatmap.png"),
        "kmeans": plots.plot_kmeans(scan, f"{title}: k-means", folder / "kmeans.png"),
        "periodic": plots.plot_periodic(elements, best, f"{title}: k-means clusters (k={scan.best_k})",
                                        folder / "periodic_clusters.png"),
    }
    fits, skipped = {}, {}
    for key in tqdm(config.properties, desc=f"{table.name} properties", unit="prop", leave=False):
        data = property_data(table, values[key])
        if len(data.elements) < config.min_elements:
            skipped[key] = (f"only {len(data.elements)} elements have a value "
                            f"(need {config.min_elements} for {config.folds}-fold CV)")
            continue
        fits[key] = cross_validate(data, config)
        if config.shap:
            add_shap(fits[key], config)
    if fits:
        figures["parity"] = plots.plot_parity(list(fits.values()), f"{title}: out-of-fold predictions",
                                              folder / "parity.png")
    if config.shap and fits:
        figures["shap"] = plots.plot_shap(list(fits.values()), f"{title}: SHAP", folder / "shap_beeswarm.png")
    summary = {
        "table": table.name,
        "n_elements": len(table),
        "dim": table.dim,
        "description": table.description,
        "sha256": table.sha256(),
        "config": _jsonable(asdict(config)),
        "pca": _pca_summary(pca),
        "kmeans": _kmeans_summary(scan, elements),
        "properties": {**{k: _fit_summary(f) for k, f in fits.items()},
                       **{k: {"skipped": reason} for k, reason in skipped.items()}},
        "figures": {k: p.name for k, p in figures.items()},
        "elapsed_seconds": round(time.time() - started, 1),
    }
    write_json(folder / "report.json", summary)
    return TableResult(summary, folder)


def _pca_summary(pca) -> dict:
    return {
        "n_components": len(pca.explained_ratio),
        "explained_variance_ratio": pca.explained_ratio.tolist(),
        "cumulative": pca.cumulative.tolist(),
        "components_for_90pct": pca.components_for(0.9),
        "components_for_95pct": pca.components_for(0.95),
    }


def _clusters(labels: np.ndarray, elements: list[str]) -> dict[str, list[str]]:
    return {str(c): [e for e, lab in zip(elements, labels) if lab == c] for c in sorted(set(labels.tolist()))}


def _kmeans_summary(scan, elements: list[str]) -> dict:
    summary = {
        "ks": scan.ks,
        "inertia": scan.inertia,
        "silhouette": scan.silhouette,
        "chosen_k": scan.best_k,
        "chosen_by": f"max mean silhouette among k with every cluster >= {scan.min_cluster_size} elements"
        if scan.eligible else "max mean silhouette (every k has a cluster below "
        f"{scan.min_cluster_size} elements: outliers dominate)",
        "eligible_ks": scan.eligible,
        "clusters": _clusters(scan.labels[scan.best_k], elements),
    }
    if PAPER_K in scan.labels:
        summary["k3_silhouette"] = scan.silhouette[scan.ks.index(PAPER_K)]
        summary["k3_clusters"] = _clusters(scan.labels[PAPER_K], elements)
    return summary


def _fit_summary(fit: PropertyFit) -> dict:
    spec = fit.data.values.spec
    return {
        "n_elements": len(fit.data.elements),
        "n_missing": len(fit.data.missing),
        "missing_elements": fit.data.missing,
        "transform": fit.data.values.transform,
        "r2_folds": fit.fold_r2,
        "r2_mean": fit.r2_mean,
        "r2_std": fit.r2_std,
        "r2_pooled_out_of_fold": fit.pooled_r2,
        "mae_folds": fit.fold_mae,
        "mae_mean": float(np.mean(fit.fold_mae)),
        "paper_r2": spec.paper_r2,
        "shap_top_dims": [{"dim": d, "mean_abs_shap": v} for d, v in fit.importance],
    }


def _property_summary(values: PropertyValues) -> dict:
    spec = values.spec
    return {
        "label": spec.label,
        "unit": spec.unit,
        "source": spec.source,
        "n_elements_with_value": len(values.raw),
        "transform": values.transform,
        "skew_raw": values.skew_raw,
        "skew_log10": values.skew_log,
        "decades": values.decades,
        "paper_r2": spec.paper_r2,
    }


def _environment() -> dict:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("catboost", "shap", "scikit-learn", "pymatgen", "numpy")}
