"""Learning curves of a pretraining run: train and validation MAE per task and epoch.

    .venv/bin/python -m ct_plugins.pretrain.curves RUN_DIR OUT.png [--title TEXT]

Reads ``RUN_DIR/history.json`` (written after every epoch), so it also plots a run that is
still going. One panel per task (``ef@mp_structures``, ``eg@oqmd``, ...), in target units.
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


def plot_curves(history: list[dict], out: Path, title: str = "") -> Path:
    """One panel per task: train (dashed) and validation (solid) MAE against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for row in history for t in row["val_mae"]})
    if not tasks:
        raise ValueError("the history has no epochs yet")
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, task in zip(axes.flat, tasks):
        for split, style in (("train_mae", "--"), ("val_mae", "-")):
            ax.plot(epochs, [row[split].get(task, float("nan")) for row in history], style, marker=".",
                    label=split.removesuffix("_mae"))
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MAE (eV/atom)" if task.startswith("ef") else "MAE (eV)")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(tasks):]:
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
