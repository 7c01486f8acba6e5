"""``ct analyze``: the paper's interpretability analysis for any tables (imports stay lazy)."""

from __future__ import annotations

import argparse
import sys

from ct_plugins.arguments import SEED
from ct_plugins.hookspecs import hookimpl

PEER_TABLES = ("cgcnn92", "megnet16", "mat2vec", "skipatom", "magpie", "mace_mp0", "orb_v2", "chgnet",
               "sevennet", "matscibert", "crystallm", "chemeleon", "random128", "random200", "onehot")
CT_TABLES = ("ct-mt", "ct-ef", "ct-eg")


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    from ct_plugins.analysis.config import DEFAULT_PROPERTIES, AnalysisConfig

    defaults = AnalysisConfig()
    parser = subparsers.add_parser(
        "analyze",
        help="PCA, clustering, k-means and property reverse-prediction (CatBoost + SHAP) of tables",
        description="Reproduce the CT-UAE paper's interpretability analysis (section II.2.4) for "
        "one or more tables: PCA, a clustered heatmap, k-means (k by silhouette) on a periodic "
        "table, reverse prediction of element properties from the embedding (CatBoost, k-fold R² "
        "on held-out elements) with SHAP importances, and an R² comparison across tables.",
    )
    parser.add_argument("--table", action="append", metavar="NAME", dest="tables",
                        help="table name or file; repeat for several (default: the CT tables "
                        f"found plus {', '.join(PEER_TABLES)})")
    parser.add_argument("--out", required=True, help="output folder (figures, report.md/json, comparison)")
    parser.add_argument("--properties", default=",".join(DEFAULT_PROPERTIES),
                        help="comma-separated element properties (default: all five: %(default)s)")
    parser.add_argument("--folds", type=int, default=defaults.folds, help="k-fold CV folds (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=defaults.iterations,
                        help="CatBoost trees per model (default: %(default)s)")
    parser.add_argument("--k-max", type=int, default=defaults.k_max, help="largest k in the k-means scan (default: %(default)s)")
    parser.add_argument("--seed", type=SEED, default=defaults.seed, help="seed for CV splits, k-means, CatBoost (default: %(default)s)")
    parser.add_argument("--no-shap", action="store_true", help="skip the SHAP importances and beeswarm plots")
    parser.add_argument("--force", action="store_true",
                        help="recompute tables already analysed in --out with the same settings")
    parser.set_defaults(func=cmd_analyze)


def default_tables() -> list[str]:
    from ct_plugins.registry import table_sources

    found = table_sources()
    return [n for n in CT_TABLES if n in found] + [n for n in PEER_TABLES if n in found]


def cmd_analyze(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ct_plugins.analysis.config import AnalysisConfig, AnalysisError
    from ct_plugins.analysis.runner import analyze_tables
    from ct_plugins.elements import UnknownElementError
    from ct_plugins.registry import load_table
    from ct_plugins.tables import TableError

    try:
        config = AnalysisConfig(
            properties=tuple(p.strip() for p in args.properties.split(",") if p.strip()),
            folds=args.folds, iterations=args.iterations, k_max=args.k_max, seed=args.seed,
            shap=not args.no_shap,
        )
        _check_properties(config.properties)
        tables = [load_table(name) for name in (args.tables or default_tables())]
        report = analyze_tables(tables, Path(args.out), config, force=args.force)
    except (AnalysisError, TableError, UnknownElementError) as exc:
        print(f"ct analyze: error: {exc}", file=sys.stderr)
        return 2
    _print_summary(report, args.out)
    return 0


def _check_properties(keys: tuple[str, ...]) -> None:
    from ct_plugins.analysis.properties import spec_for

    for key in keys:
        spec_for(key)


def _print_summary(report: dict, out: str) -> None:
    from ct_plugins.analysis.report import comparison_markdown

    print(comparison_markdown(report["comparison"]))
    print(f"wrote {out}/report.md, {out}/comparison.md and figures ({report['elapsed_seconds']} s)")
