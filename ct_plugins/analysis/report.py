"""report.json / report.md / comparison.md writers. Every number comes from the run's results."""

from __future__ import annotations

import json
from pathlib import Path

from ct_plugins.files import atomic_write_bytes, json_default


def write_json(path: Path, data: dict) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=2, default=json_default) + "\n").encode())


def _write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def comparison(results: dict, values: dict) -> dict:
    """R² per property per table, the chosen k, and the paper's values for reference."""
    r2 = {}
    for name, result in results.items():
        props = result.summary["properties"]
        r2[name] = {
            k: {"r2_mean": p["r2_mean"], "r2_std": p["r2_std"], "n_elements": p["n_elements"],
                "r2_pooled": p["r2_pooled_out_of_fold"]}
            for k, p in props.items() if "r2_mean" in p
        }
    return {
        "properties": list(values),
        "labels": {k: v.spec.label for k, v in values.items()},
        "paper_r2": {k: v.spec.paper_r2 for k, v in values.items()},
        "r2": r2,
        "chosen_k": {n: r.summary["kmeans"]["chosen_k"] for n, r in results.items()},
        "dims": {n: r.summary["dim"] for n, r in results.items()},
    }


COMPARISON_NOTE = (
    "R² on held-out elements: mean ± std over the folds, in brackets the R² of all out-of-fold "
    "predictions pooled (steadier when one fold holds an outlier). Paper values are the CT-UAE "
    "paper's Table 6, for reference; they were not measured here."
)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def comparison_markdown(comp: dict) -> str:
    tables = list(comp["r2"])
    head = ["property", *[f"{t} ({comp['dims'][t]}-d)" for t in tables], "paper CT-UAE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in comp["properties"]:
        cells = []
        for t in tables:
            entry = comp["r2"][t].get(key)
            cells.append(f"{entry['r2_mean']:.3f} ± {entry['r2_std']:.3f} ({entry['r2_pooled']:.3f})"
                         if entry else "skipped")
        lines.append(f"| {comp['labels'][key]} | " + " | ".join(cells) + f" | {_fmt(comp['paper_r2'][key])} |")
    lines.append("| k-means k (silhouette) | " + " | ".join(str(comp["chosen_k"][t]) for t in tables) + " | 3 |")
    return "\n".join(lines) + "\n"


def _config_line(config: dict) -> str:
    return (f"CatBoost iterations={config['iterations']}, depth={config['depth']}, "
            f"learning_rate={config['learning_rate']}, thread_count=1; {config['folds']}-fold CV "
            f"(shuffled, seed {config['seed']}); k-means k={config['k_min']}..{config['k_max']} "
            f"(n_init=10, seed {config['seed']}; k by silhouette, smallest cluster >= "
            f"{config['min_cluster_fraction']:.0%} of the elements); PCA up to {config['pca_max_components']} components")


def _properties_markdown(properties: dict) -> str:
    lines = ["| property | unit | source | elements with value (H..Fm) | skew raw | skew log10 | target |",
             "|---|---|---|---|---|---|---|"]
    for p in properties.values():
        lines.append(f"| {p['label']} | {p['unit']} | {p['source']} | {p['n_elements_with_value']} | "
                     f"{_fmt(p['skew_raw'], 2)} | {_fmt(p['skew_log10'], 2)} | {p['transform']} |")
    return "\n".join(lines) + "\n"


def _pca_reach(pca: dict) -> str:
    if pca["components_for_90pct"] is not None:
        return f"{pca['components_for_90pct']} of {pca['n_components']} components explain 90% of the variance"
    return f"the {pca['n_components']} components kept explain {pca['cumulative'][-1]:.1%} of the variance"


def table_markdown(summary: dict, labels: dict, prefix: str = "") -> str:
    km, pca = summary["kmeans"], summary["pca"]
    out = [f"## {summary['table']}\n",
           f"{summary['description'] or '(no description)'} — {summary['n_elements']} elements × "
           f"{summary['dim']} dims, sha256 `{summary['sha256'][:12]}…`; analysed in "
           f"{summary.get('elapsed_seconds', '?')} s\n",
           f"- PCA: {_pca_reach(pca)} (first PC: {pca['explained_variance_ratio'][0]:.1%}).",
           f"- k-means: chosen k = {km['chosen_k']}, silhouette "
           f"{km['silhouette'][km['ks'].index(km['chosen_k'])]:.3f} ({km['chosen_by']})" + (f"; paper's k = 3 has silhouette {km['k3_silhouette']:.3f}"
                                             if "k3_silhouette" in km else "") + ".",
           ]
    for cluster, members in km["clusters"].items():
        out.append(f"  - cluster {cluster} ({len(members)}): {' '.join(members)}")
    out += ["", "| property | elements | skipped (no value) | target | R² mean ± std (folds) | "
            "R² pooled OOF | MAE | paper R² | top SHAP dims (mean abs SHAP) |", "|---|---|---|---|---|---|---|---|---|"]
    for key, p in summary["properties"].items():
        if "skipped" in p:
            out.append(f"| {labels[key]} | skipped: {p['skipped']} | | | | | | | |")
            continue
        dims = ", ".join(f"{d['dim']} ({d['mean_abs_shap']:.3g})" for d in p["shap_top_dims"]) or "–"
        out.append(f"| {labels[key]} | {p['n_elements']} | {p['n_missing']} | {p['transform']} | "
                   f"{p['r2_mean']:.3f} ± {p['r2_std']:.3f} | {p['r2_pooled_out_of_fold']:.3f} | "
                   f"{p['mae_mean']:.3g} | {_fmt(p['paper_r2'])} | {dims} |")
    out.append("")
    for key, name in summary["figures"].items():
        out.append(f"![{summary['table']} {key}]({prefix}{name})\n")
    return "\n".join(out) + "\n"


def similarity_markdown(similarity: dict) -> str:
    """Mantel r between every pair of tables, as a markdown matrix."""
    names = similarity["tables"]
    rows = [f"| {a} | " + " | ".join(f"{similarity['r'][a][b]:.2f}" for b in names) + " |" for a in names]
    return ("## Which tables are alike (Mantel test)\n\nSpearman correlation of the element-distance "
            "matrices (standardised rows, shared elements only); p-values from label permutations are "
            "in report.json.\n\n| table | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
            + "\n".join(rows) + "\n\n![table similarity](similarity.png)\n\n")


def write_markdown(out: Path, report: dict, folders: dict[str, Path]) -> None:
    comp = report["comparison"]
    labels = comp["labels"]
    comp_md = ("# Reverse prediction: R² per property per table\n\n"
               f"{COMPARISON_NOTE}\n\n" + comparison_markdown(comp)
               + f"\n{_config_line(report['config'])}.\n\n![R² comparison](comparison_r2.png)\n")
    _write_text(out / "comparison.md", comp_md)
    sections = []
    for name, summary in report["tables"].items():
        prefix = f"{folders[name].name}/"
        sections.append(table_markdown(summary, labels, prefix))
        _write_text(folders[name] / "report.md", "# Embedding analysis\n\n" + table_markdown(summary, labels))
    env = ", ".join(f"{k} {v}" for k, v in report["environment"].items())
    text = (
        "# Embedding analysis (CT-UAE paper section II.2.4 analogue)\n\n"
        f"Settings: {_config_line(report['config'])}. Run time {report['elapsed_seconds']} s"
        + (f" (reused from an earlier identical run: {', '.join(report['reused_tables'])})"
           if report["reused_tables"] else "") + f". {env}.\n\n"
        "Embeddings are standardised per dimension for PCA, heatmap and k-means; CatBoost sees the raw "
        "rows. k is chosen by the largest mean silhouette among the k whose clusters all hold at least "
        f"{report['config']['min_cluster_fraction']:.0%} of the elements (a lone outlier otherwise wins). SHAP comes from one model per property fitted "
        "on all elements with a value (importance only; R² is always on held-out elements).\n\n"
        "## Element properties\n\n" + _properties_markdown(report["properties"])
        + f"\n## Comparison\n\n{COMPARISON_NOTE}\n\n" + comparison_markdown(comp) + "\n![R² comparison](comparison_r2.png)\n\n"
        + similarity_markdown(report["similarity"]) + "\n".join(sections)
    )
    _write_text(out / "report.md", text)
