"""Figures of one table's analysis (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ct_plugins.analysis.periodic import cell
from ct_plugins.analysis.regression import PropertyFit
from ct_plugins.analysis.structure import KMeansScan, PCAResult

DPI = 130


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _grid(n: int, width: float, height: float, columns: int = 3):
    """A figure with ``n`` panels in rows of ``columns``; unused panels are hidden."""
    plt = _pyplot()
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _cluster_colors(labels: np.ndarray):
    cmap = _pyplot().get_cmap("tab10")
    return [cmap(int(c) % 10) for c in labels]


def plot_pca(pca: PCAResult, elements: Sequence[str], labels: np.ndarray, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    steps = np.arange(1, len(pca.explained_ratio) + 1)
    left.bar(steps, pca.explained_ratio, color="#9ecae1", label="per component")
    left.plot(steps, pca.cumulative, "o-", color="#08519c", ms=3, label="cumulative")
    left.axhline(0.9, color="grey", ls="--", lw=0.8)
    needed = pca.components_for(0.9)
    reach = f"{needed} PCs reach 90%" if needed else f"{len(steps)} PCs reach {pca.cumulative[-1]:.0%}"
    left.set(xlabel="principal component", ylabel="explained variance ratio", ylim=(0, 1.02),
             title=f"explained variance ({reach})")
    left.legend(loc="center right")
    xy = pca.coords[:, :2] if pca.coords.shape[1] > 1 else np.c_[pca.coords[:, 0], np.zeros(len(elements))]
    right.scatter(xy[:, 0], xy[:, 1], c=_cluster_colors(labels), s=28, alpha=0.8)
    for (px, py), sym in zip(xy, elements):
        right.annotate(sym, (px, py), fontsize=6.5, xytext=(2, 2), textcoords="offset points")
    right.set(xlabel="PC1", ylabel="PC2", title=f"PC1 vs PC2, coloured by k-means (k={len(set(labels))})")
    fig.suptitle(title)
    return _save(fig, path)


def plot_heatmap(x: np.ndarray, elements: Sequence[str], title: str, path: Path) -> Path:
    """Rows and columns ordered by Ward clustering; values are per-dimension z-scores."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    plt = _pyplot()
    row_link = linkage(x, method="ward")
    col_order = dendrogram(linkage(x.T, method="ward"), no_plot=True)["leaves"] if x.shape[1] > 2 else list(range(x.shape[1]))
    fig = plt.figure(figsize=(12, max(6.0, 0.13 * len(elements) + 1.5)))
    dend_ax = fig.add_axes([0.02, 0.05, 0.13, 0.88])
    heat_ax = fig.add_axes([0.19, 0.05, 0.70, 0.88])
    bar_ax = fig.add_axes([0.91, 0.35, 0.015, 0.3])
    tree = dendrogram(row_link, orientation="left", ax=dend_ax, no_labels=True,
                      color_threshold=0, above_threshold_color="#444444")
    dend_ax.axis("off")
    row_order = tree["leaves"]  # bottom-to-top, as imshow with origin="lower" draws them
    image = heat_ax.imshow(np.clip(x[row_order][:, col_order], -3, 3), aspect="auto", origin="lower",
                           cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest")
    heat_ax.set_yticks(range(len(elements)), [elements[i] for i in row_order], fontsize=6)
    heat_ax.yaxis.tick_right()
    heat_ax.set_xlabel("embedding dimension (clustered order)")
    heat_ax.set_xticks([])
    fig.colorbar(image, cax=bar_ax, label="z-score (clipped ±3)")
    heat_ax.set_title(title)
    return _save(fig, path)


def plot_kmeans(scan: KMeansScan, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(scan.ks, scan.inertia, "o-")
    left.set(xlabel="k", ylabel="inertia (within-cluster SS)", title="elbow")
    right.plot(scan.ks, scan.silhouette, "o-", color="#d95f02")
    small = [k for k in scan.ks if k not in scan.eligible]
    if small:
        right.scatter(small, [scan.silhouette[scan.ks.index(k)] for k in small], marker="x", s=60,
                      color="black", zorder=3, label=f"a cluster < {scan.min_cluster_size} elements")
        right.legend(fontsize=8)
    right.axvline(scan.best_k, color="grey", ls="--", lw=0.8)
    right.set(xlabel="k", ylabel="mean silhouette", title=f"silhouette (chosen k = {scan.best_k})")
    for ax in (left, right):
        ax.set_xticks(scan.ks)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_periodic(elements: Sequence[str], labels: np.ndarray, title: str, path: Path) -> Path:
    from matplotlib.patches import Patch, Rectangle

    from ct_plugins.elements import SYMBOLS

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(13, 7.5))
    colour = dict(zip(elements, _cluster_colors(labels)))
    for z, sym in enumerate(SYMBOLS, start=1):
        col, row = cell(z)
        face = colour.get(sym, "#eeeeee")
        ax.add_patch(Rectangle((col - 0.48, row - 0.48), 0.96, 0.96, facecolor=face,
                               edgecolor="#555555", lw=0.6, alpha=0.85 if sym in colour else 1.0))
        ax.text(col, row, sym, ha="center", va="center", fontsize=9,
                color="black" if sym in colour else "#999999")
    handles = [Patch(color=c, label=f"cluster {k}") for k, c in
               sorted({int(k): c for k, c in zip(labels, _cluster_colors(labels))}.items())]
    handles.append(Patch(color="#eeeeee", label="not in table"))
    ax.legend(handles=handles, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 0.0), frameon=False)
    ax.set(xlim=(0.4, 18.6), ylim=(10.6, 0.4), title=title)
    ax.set_aspect("equal")
    ax.axis("off")
    return _save(fig, path)


def plot_shap(fits: Sequence[PropertyFit], title: str, path: Path, max_display: int = 8) -> Path:
    """One beeswarm per property (SHAP of each dimension, coloured by the dimension's value)."""
    import shap

    plt = _pyplot()
    shown = [f for f in fits if f.shap_values is not None]
    fig, axes = _grid(len(shown), 5.0, 4.2)
    for ax, fit in zip(axes, shown):
        names = [f"dim {i}" for i in range(fit.data.x.shape[1])]
        explanation = shap.Explanation(fit.shap_values, data=fit.data.x, feature_names=names)
        plt.sca(ax)
        shap.plots.beeswarm(explanation, max_display=max_display, ax=ax, show=False,
                            plot_size=None, color_bar=ax is axes[-1], s=10)
        ax.set_title(fit.data.values.spec.label, fontsize=10)
        ax.set_xlabel("SHAP value" + (" (log10 target)" if fit.data.values.transform == "log10" else ""))
        ax.tick_params(labelsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_parity(fits: Sequence[PropertyFit], title: str, path: Path) -> Path:
    """Out-of-fold prediction vs truth: every point is an element its model never saw."""
    fig, axes = _grid(len(fits), 3.8, 3.6)
    for ax, fit in zip(axes, fits):
        y, pred = fit.data.y, fit.oof_prediction
        ax.scatter(y, pred, s=12, alpha=0.7)
        span = [min(y.min(), pred.min()), max(y.max(), pred.max())]
        ax.plot(span, span, color="grey", lw=0.8)
        unit = fit.data.values.spec.unit
        label = f"log10 {unit}" if fit.data.values.transform == "log10" else unit
        ax.set(xlabel=f"true ({label})", ylabel="predicted",
               title=f"{fit.data.values.spec.label}\nR² {fit.r2_mean:.3f} ± {fit.r2_std:.3f}")
        ax.title.set_fontsize(9)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(r2: dict[str, dict[str, tuple[float, float]]], labels: dict[str, str],
                    paper: dict[str, float | None], path: Path) -> Path:
    """Grouped bars: R² (mean ± std over folds) per property, one bar per table."""
    plt = _pyplot()
    tables = list(r2)
    props = list(labels)
    width = 0.8 / max(1, len(tables))
    fig, ax = plt.subplots(figsize=(max(9, 2.2 * len(props)), 4.8))
    cmap = plt.get_cmap("tab10")
    x = np.arange(len(props))
    for i, name in enumerate(tables):
        means = [r2[name].get(p, (np.nan, 0))[0] for p in props]
        stds = [r2[name].get(p, (np.nan, 0))[1] for p in props]
        ax.bar(x + (i - (len(tables) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=name, color=cmap(i % 10), error_kw={"lw": 0.7})
    paper_y = [paper.get(p) if paper.get(p) is not None else np.nan for p in props]
    ax.hlines(paper_y, x - 0.42, x + 0.42, color="black", lw=2, zorder=5, label="paper (CT-UAE)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, [labels[p] for p in props])
    lowest = min([0.0, *(mean for row in r2.values() for mean, _ in row.values())])
    # Below -1 a bar says only "worse than predicting the mean"; clipping keeps the rest legible.
    ax.set(ylabel="R² on held-out elements (k-fold)", ylim=(max(-1.0, min(-0.1, lowest - 0.1)), 1.1))
    ax.set_title("Reverse prediction of element properties from each embedding", pad=40)
    ax.legend(fontsize=8, ncol=min(5, len(tables) + 1), loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(fig, path)


def plot_similarity(similarity: dict, path: Path) -> Path:
    """Heatmap of the Mantel r between every pair of tables (1 = same element geometry)."""
    plt = _pyplot()
    names = similarity["tables"]
    r = np.array([[similarity["r"][a][b] for b in names] for a in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.6 + 0.6 * len(names)))
    image = ax.imshow(r, cmap="viridis", vmin=min(0.0, np.nanmin(r)), vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if r[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Mantel r (Spearman, shared elements)")
    ax.set_title("Which tables are alike: element-distance correlation")
    return _save(fig, path)
