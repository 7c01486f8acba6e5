"""Paper Table 1 on MP structures: the CT itself as a predictor vs the GNNs with their own features.

    .venv/bin/python -m benchmarks.table1 --heads HEADS.json [--report REPORT.json] [--out benchmarks/results]

HEADS.json is written by ``python -m benchmarks.ct_heads RUN --json HEADS.json`` (the CT's
heads on the fixed MP test part; ``table1-mp.json`` keeps it under "heads"); the GNN rows are the
default-feature runs of the ``benchmarks.run mp-table2 --scale mp`` report (default
benchmarks/results/mp-table2-mp.json). Every row is scored on the same fixed MP test part; the
CT saw far more MP training structures than the GNNs' training pool, which the table states.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PAPER = {"CT": (0.097, 0.563), "cgcnn": (0.083, 0.384), "megnet": (0.051, 0.324), "alignn": (0.022, 0.276)}
TASKS = {"mp-ef": ("ef@mp_structures", 0), "mp-eg": ("eg@mp_structures", 1)}


def gnn_rows(report: dict) -> list[dict]:
    """Test MAE (mean ± std over seeds) of every back-end's default runs per MP task."""
    rows = []
    for task in TASKS:
        for upstream in sorted({r["upstream"] for r in report["runs"]}):
            runs = [r for r in report["runs"] if (r["task"], r["upstream"], r["table"], r["mode"])
                    == (task, upstream, "default", "frozen") and "error" not in r]
            maes = [run["test_mae"] for run in runs]
            if runs:
                first = runs[0]
                rows.append({"model": upstream, "task": task, "mean": float(np.mean(maes)),
                             "std": float(np.std(maes, ddof=1)) if len(maes) > 1 else None,
                             "seeds": len(maes), "n_train": first.get("n_train"), "n_test": first.get("n_test"),
                             "epochs": first.get("epochs"),
                             "paper": PAPER.get(upstream, (None, None))[TASKS[task][1]]})
    return rows


def ct_rows(heads: dict) -> list[dict]:
    return [{"model": "CT", "task": task, "mean": heads["test_mae"][key], "std": None, "seeds": 1,
             "n_train": None, "n_test": heads["n_structures"], "epochs": heads["epochs"],
             "paper": PAPER["CT"][index]}
            for task, (key, index) in TASKS.items() if key in heads["test_mae"]]


def markdown(rows: list[dict], heads: dict) -> str:
    lines = ["# Table 1 on MP structures: the CT as a predictor vs the GNNs' own features", "",
             f"CT: `{heads['run']}` after {heads['epochs']} epochs (best epoch {heads['best_epoch']}), "
             "pretrained on MP structures + compositions + OQMD/CMR without the test part's formulas. "
             "GNNs: upstream default features on the `mp` scale training pool (scaled down).", "",
             "| model | task | test MAE | seeds | train / test structures | epochs | paper |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f" ± {r['std']:.4f}" if r["std"] is not None else ""
        paper = "–" if r["paper"] is None else f"{r['paper']:.3f}"
        lines.append(f"| {r['model']} | {r['task']} | {r['mean']:.4f}{spread} | {r['seeds']} | "
                     f"{r['n_train'] or 'pretraining corpus'} / {r['n_test']} | {r['epochs']} | {paper} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", type=Path, required=True)
    parser.add_argument("--report", type=Path, default=RESULTS / "mp-table2-mp.json",
                        help="the mp-table2 report whose default runs are the GNN rows (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for path in (args.heads, args.report):
        if not path.exists():
            print(f"benchmarks.table1: {path} does not exist", file=sys.stderr)
            return 2
    heads = json.loads(args.heads.read_text())
    rows = ct_rows(heads) + gnn_rows(json.loads(args.report.read_text()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table1-mp.json").write_text(json.dumps({"heads": heads, "rows": rows}, indent=2) + "\n")
    text = markdown(rows, heads)
    (args.out / "table1-mp.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
