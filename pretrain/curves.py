"""Learning curves of a pretraining run: train and validation MAE per task and epoch.

    .venv/bin/python -m ct_plugins.pretrain.curves RUN_DIR OUT.png [--title TEXT]

Reads ``RUN_DIR/history.json`` (written after every epoch), so it also plots a run that is
still going. One panel per task (``ef@mp_structures``, ``eg@oqmd``, ...), in target units; a
binary task (``metal@mp_structures``) is plotted as accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a `ct pretrain` run folder?")
    return json.loads(path.read_text())


def panels(history: list[dict]) -> list[tuple[str, str]]:
    """(task, metric) per panel: every task with a validation MAE, then every task with a
    validation accuracy (histories without binary tasks have no ``val_accuracy``)."""
    return [(task, metric) for metric in ("mae", "accuracy")
            for task in sorted({t for row in history for t in row.get(f"val_{metric}", {})})]


def _ylabel(task: str, metric: str) -> str:
    if metric == "accuracy":
        return "accuracy"
    return "MAE (eV/atom)" if task.startswith("ef") else "MAE (eV)"


def plot_curves(history: list[dict], out: Path, title: str = "") -> Path:
    """One panel per task: train (dashed) and validation (solid) MAE, or accuracy, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels(history)
    if not shown:
        raise ValueError("the history has no epochs yet")
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, (task, metric) in zip(axes.flat, shown):
        for split, style in (("train", "--"), ("val", "-")):
            ax.plot(epochs, [row.get(f"{split}_{metric}", {}).get(task, float("nan")) for row in history],
                    style, marker=".", label=split)
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_ylabel(task, metric))
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle(title or f"CT pretraining: {len(history)} epochs")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        written = plot_curves(read_history(args.run_dir), args.out, args.title)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as error:
        print(f"ct-plugins curves: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
