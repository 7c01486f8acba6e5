"""Small-data curves: test MAE vs the number of training structures, per table and back-end.

    python -m benchmarks.small_data --tasks oqmd-ef --upstreams cgcnn --sizes 100,300,1000 \\
        --seeds 0,1,2 --work /work/ct-bench/small-data
    python -m benchmarks.small_data --scale smoke          # tests/data, well under a minute

Every size and seed of a task is scored on one fixed test part (MP tasks: their formula-disjoint
test part; perovskite tasks: the records whose reduced formula hashes into the first 10%, the
same rule). Per seed the training subsets are nested (the 100 are inside the 300 ...) and so are
the validation subsets, whose size is a fixed fraction of train + val. Runs go through
``benchmarks.run.run_one``: the same work folder, locks and cache (a run is reused only for the
same table, records, upstream version and hyper-parameters), so an interrupted curve resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.downstream import TASKS, Prepared, prepare, read_jsonl, write_jsonl
from benchmarks.experiments import CONTROLS, UPSTREAM_LABELS, Variant
from benchmarks.report import carried_note, protocol_label, write_report_files
from benchmarks.run import (RESULTS, SCALES, NotCached, Scale, _attempt, add_earlier_option, add_protocol_options,
                            load_earlier, protocol_scale, sized_task, write_if_changed)
from ct_plugins.arguments import SEEDS
from ct_plugins.provenance import code_provenance
from ct_plugins.training import UPSTREAM_DEFAULT

DEFAULT_SIZES = ("100", "300", "1000", "3000", "max")  # "max": the largest the pool allows
SMOKE_SIZES = ("20", "40", "max")
DEFAULT_TABLES = (UPSTREAM_DEFAULT, "ct", "mace_mp0:std", "random128:std")
CONTROL = CONTROLS[0]  # random128:std, the same-width random table
VAL_FRACTION = 0.1  # of train + val, the same for every size
MIN_VAL = 5  # a validation part below this picks the best epoch by noise


@dataclass(frozen=True)
class Curve:
    """The fixed test part and the seed-independent pool of one task."""

    task: str
    prepared: Prepared  # test part written first, then the pool
    test_ids: list[str]
    pool_ids: list[str]

    @property
    def largest(self) -> int:
        return largest_size(len(self.pool_ids))


def n_val(n_train: int) -> int:
    """Validation records beside ``n_train`` training records (``VAL_FRACTION`` of both)."""
    return max(MIN_VAL, round(n_train * VAL_FRACTION / (1 - VAL_FRACTION)))


def largest_size(pool: int) -> int:
    """The most training records a pool of ``pool`` holds beside their validation part."""
    n = int(pool * (1 - VAL_FRACTION))
    while n > 0 and n + n_val(n) > pool:
        n -= 1
    return n


def load_curve(task: str, smoke: bool, cache: Path) -> Curve:
    """Write the task's records (fixed test part first) and read back its ids."""
    # A perovskite task gets the MP rule for its held-out part; its own name keeps the file apart.
    spec = TASKS[task] if TASKS[task].fixed_test else replace(TASKS[task], name=f"{task}-heldout",
                                                               fixed_test=True)
    prepared = prepare(spec, None, smoke, cache)
    ids = [r["id"] for r in read_jsonl(prepared.path)]
    return Curve(task, prepared, ids[: prepared.n_test_fixed], ids[prepared.n_test_fixed:])


def nested_split(curve: Curve, seed: int, n_train: int) -> dict[str, list[str]]:
    """ids per part for one size: seeded streams cut at ``n_train`` and ``n_val(n_train)``.

    The validation stream is as long as the largest size needs and independent of the sizes
    asked for, so a size's split never depends on which other sizes run beside it.
    """
    if not 0 < n_train <= curve.largest:
        raise ValueError(f"{curve.task}: {n_train} training records do not fit a pool of "
                         f"{len(curve.pool_ids)} (largest: {curve.largest})")
    order = [curve.pool_ids[i] for i in np.random.default_rng(seed).permutation(len(curve.pool_ids))]
    val_stream, train_stream = order[: n_val(curve.largest)], order[n_val(curve.largest):]
    return {"train": train_stream[:n_train], "val": val_stream[: n_val(n_train)],
            "test": list(curve.test_ids)}


def write_subset(curve: Curve, seed: int, n_train: int, folder: Path) -> tuple[Path, Path]:
    """The records one run reads (its split only: parsing the whole pool per run is slow) and
    its split file; both rewritten only on change, as parallel processes may read them."""
    split = nested_split(curve, seed, n_train)
    stem = f"{curve.prepared.path.name.split('.')[0]}-n{n_train}-seed{seed}"
    wanted = {i for part in split.values() for i in part}
    records = [r for r in read_jsonl(curve.prepared.path) if r["id"] in wanted]
    data, split_file = folder / f"{stem}.jsonl.gz", folder / f"{stem}-split.json"
    if not data.is_file() or list(read_jsonl(data)) != records:  # same records, labels included
        write_jsonl(data, records)
    write_if_changed(split_file, json.dumps(split).encode())
    return data, split_file


def variants(upstreams: list[str], tables: list[str]) -> list[Variant]:
    return [Variant(f"{UPSTREAM_LABELS.get(u, u)} {t}", u, t) for u in upstreams for t in tables]


def run_curves(task: str, scale: Scale, sizes: list[str], seeds: tuple[int, ...],
               chosen: list[Variant], work: Path, cached_only: bool = False,
               earlier: dict[str, dict] | None = None) -> dict:
    """Every variant at every size and seed; a failed run is recorded, the others go on.
    ``cached_only``: report the finished runs of the work folder, train nothing (a run still
    missing is counted in ``missing``). ``earlier``: runs of earlier reports (run.load_earlier)."""
    curve = load_curve(task, scale.smoke, work / "data")
    resolved = resolve_sizes(sizes, curve)
    runs, missing = [], []
    for n in resolved:
        for seed in seeds:
            data, split_file = write_subset(curve, seed, n, work / "data")
            for variant in chosen:
                try:
                    row = _attempt(variant, sized_task(task, n), data, seed, scale, work, split_file, cached_only,
                                   earlier)
                except NotCached as why:
                    missing.append({"variant": variant.label, "n": n, "seed": seed, "why": str(why)})
                    continue
                runs.append({**row, "task": task, "n": n})
    return {
        "experiment": "small_data", "task": task, "unit": TASKS[task].unit,
        "scale": asdict(scale), "protocol": scale.protocol, "scaled_down": scale.name != "paper",
        "sizes": resolved, "seeds": list(seeds), "val_fraction": VAL_FRACTION,
        "n_test": len(curve.test_ids), "n_pool": len(curve.pool_ids), "largest_size": curve.largest,
        "source": str(Path(curve.prepared.source).resolve()),  # a symlinked data folder's real place
        "variants": [asdict(v) for v in chosen],
        **code_provenance(), "runs": runs, "missing": missing,
        "summary": summarise(runs, chosen, resolved),
    }


def resolve_sizes(sizes: list[str], curve: Curve) -> list[int]:
    """Sizes as numbers, "max" as the largest that fits; sizes beyond the pool are left out."""
    wanted = {curve.largest if s == "max" else int(s) for s in sizes}
    dropped = sorted(n for n in wanted if n > curve.largest)
    if dropped:
        print(f"  {curve.task}: sizes {dropped} exceed the pool (largest {curve.largest}); left out")
    return sorted(n for n in wanted if 0 < n <= curve.largest)


def summarise(runs: list[dict], chosen: list[Variant], sizes: list[int]) -> list[dict]:
    """Mean ± std per variant and size, and paired differences (same seed: same split and
    initialisation seed) against the back-end's default and its random control."""
    rows = []
    for variant in chosen:
        for n in sizes:
            maes = _by_seed(runs, variant.upstream, variant.table, n)
            failed = sum(1 for r in runs if r["variant"] == variant.label and r["n"] == n and "error" in r)
            if not maes and not failed:
                continue
            values = list(maes.values())
            rows.append({
                "upstream": variant.upstream, "variant": variant.label, "table": variant.table,
                "n": n, "n_runs": len(values), "n_failed": failed,
                "mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "vs_default": None if variant.table == UPSTREAM_DEFAULT
                else _paired(maes, _by_seed(runs, variant.upstream, UPSTREAM_DEFAULT, n)),
                "vs_control": None if variant.table == CONTROL
                else _paired(maes, _by_seed(runs, variant.upstream, CONTROL, n)),
            })
    return rows


def _by_seed(runs: list[dict], upstream: str, table: str, n: int) -> dict[int, float]:
    return {r["seed"]: r["test_mae"] for r in runs if r["upstream"] == upstream
            and r["table"] == table and r["n"] == n and "error" not in r}


def _paired(mine: dict[int, float], base: dict[int, float]) -> dict | None:
    seeds = sorted(mine.keys() & base.keys())
    if not seeds:
        return None
    diffs = [mine[s] - base[s] for s in seeds]
    return {"mean": float(np.mean(diffs)), "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
            "seeds": seeds, "wins": sum(d < 0 for d in diffs)}


def markdown(result: dict) -> str:
    scale = result["scale"]
    epochs = {u: e for u, e in scale["epochs"].items() if any(r["upstream"] == u for r in result["runs"])}
    lines = [
        f"## Small-data curve: {result['task']} test MAE ({result['unit']}) vs training structures",
        "",
        f"Scale `{scale['name']}`{' (scaled down)' if result['scaled_down'] else ''}; "
        f"{'small model; ' if scale['small_model'] else ''}training sizes {result['sizes']}; "
        f"seeds {result['seeds']}; {protocol_label(result, epochs)}; validation {result['val_fraction']:.0%} of "
        f"train + val (at least {MIN_VAL}); one fixed test part of {result['n_test']} records for "
        f"every size and seed; pool {result['n_pool']} records ({result['source']}); commit "
        f"`{result['commit'][:10]}` (report); runs trained at {_run_commits(result['runs'])}.",
        *([f"Not yet run ({len(result['missing'])}): "
           + ", ".join(f"{m['variant']} n={m['n']} seed {m['seed']}" for m in result["missing"])
           + "; the same command without --cached-only trains them (finished runs are reused): "
           f"`{result.get('command', '')}`."] if result.get("missing") else []),
        *carried_note(result["runs"]),
        "Training subsets are nested per seed (each size's records contain the smaller sizes'). "
        "Paired differences: variant minus the default (or the random control "
        f"`{CONTROL}`) on the same seed; negative is better; wins = seeds where the variant is lower.",
        "",
        "| back-end | n train | variant | test MAE (mean ± std) | vs default (paired ± std, wins) "
        "| vs random control (paired ± std, wins) | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(result["summary"], key=lambda r: (r["upstream"], r["n"])):
        failed = f" ({row['n_failed']} failed)" if row["n_failed"] else ""
        mean = "failed" if row["mean"] is None else f"{row['mean']:.4f}" + (
            f" ± {row['std']:.4f}" if row["std"] is not None else "")
        lines.append(f"| {row['upstream']} | {row['n']} | {row['variant']} | {mean} | "
                     f"{_diff(row['vs_default'])} | {_diff(row['vs_control'])} | {row['n_runs']}{failed} |")
    return "\n".join(lines) + "\n"


def _run_commits(runs: list[dict]) -> str:
    """The commits (and dirty flags) the runs recorded when they started training."""
    seen = dict.fromkeys((str(r.get("commit"))[:10], r.get("dirty")) for r in runs if "error" not in r)
    return ", ".join(f"`{c}`{' (dirty tree)' if d else ''}" for c, d in seen) or "–"


def _diff(paired: dict | None) -> str:
    if paired is None:
        return "–"
    spread = f" ± {paired['std']:.4f}" if paired["std"] is not None else ""
    return f"{paired['mean']:+.4f}{spread} ({paired['wins']}/{len(paired['seeds'])})"


def plot(result: dict, path: Path) -> Path:
    """One figure per task: log-x test MAE vs n, error bars (std over seeds), a subplot per back-end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    upstreams = list(dict.fromkeys(r["upstream"] for r in result["summary"]))
    fig, axes = plt.subplots(1, max(1, len(upstreams)), figsize=(5.5 * max(1, len(upstreams)), 4.2),
                             squeeze=False)
    for ax, upstream in zip(axes[0], upstreams):
        rows = [r for r in result["summary"] if r["upstream"] == upstream and r["mean"] is not None]
        for table in dict.fromkeys(r["table"] for r in rows):
            line = sorted((r for r in rows if r["table"] == table), key=lambda r: r["n"])
            ax.errorbar([r["n"] for r in line], [r["mean"] for r in line],
                        yerr=[r["std"] or 0 for r in line], marker="o", capsize=3, label=table)
        ax.set_xscale("log")
        ax.set_xlabel("training structures")
        ax.set_ylabel(f"test MAE ({result['unit']})")
        ax.set_title(f"{UPSTREAM_LABELS.get(upstream, upstream)}, {result['task']}")
        ax.legend(fontsize=8)
    epochs = result["scale"]["epochs"]
    protocol = (f"epochs {', '.join(f'{u} {epochs[u]}' for u in upstreams)}"
                if result["scale"].get("patience") is None
                else f"early stopping, patience {result['scale']['patience']}")
    fig.suptitle(f"Small-data curve, scale {result['scale']['name']}: seeds {result['seeds']}, "
                 f"{protocol}, "
                 + (f"{len(result['runs'])} of {len(result['runs']) + len(result['missing'])} runs "
                    "finished (a point: mean ± std of its seeds), " if result.get("missing") else "")
                 + f"test part {result['n_test']}", fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(result: dict, out: Path) -> dict[str, Path]:
    return write_report_files(result, out, f"small_data-{result['task']}", markdown, plot)


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _check_sizes(sizes: list[str]) -> str | None:
    bad = [s for s in sizes if s != "max" and not (s.isdigit() and int(s) > 0)]
    return f"--sizes: {', '.join(bad)} is not a positive number or 'max'" if bad else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.small_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="oqmd-ef,mp-ef", help="comma-separated tasks")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small",
                        help="epochs, model size and data source (smoke: tests/data, small model)")
    parser.add_argument("--sizes", help="comma-separated training sizes, 'max' for the largest "
                        f"that fits (default {','.join(DEFAULT_SIZES)}; smoke {','.join(SMOKE_SIZES)})")
    parser.add_argument("--seeds", type=SEEDS, help="comma-separated seeds (default: the scale's)")
    parser.add_argument("--upstreams", default="cgcnn,megnet")
    parser.add_argument("--variants", default=",".join(DEFAULT_TABLES),
                        help="comma-separated tables ('default': the upstream's own features)")
    add_protocol_options(parser)
    add_earlier_option(parser)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument("--work", type=Path, help="run folders (default: OUT/work/small_data-SCALE)")
    parser.add_argument("--cached-only", action="store_true",
                        help="train nothing: report the runs already finished in --work")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    tasks, upstreams, tables = _csv(args.tasks), _csv(args.upstreams), _csv(args.variants)
    sizes = _csv(args.sizes) if args.sizes else list(SMOKE_SIZES if scale.smoke else DEFAULT_SIZES)
    problem = (_check_sizes(sizes)
               or next((f"--tasks: unknown task {t!r}" for t in tasks if t not in TASKS), None)
               or next((f"--upstreams: unknown back-end {u!r}" for u in upstreams if u not in scale.epochs), None))
    if problem or not (tasks and upstreams and tables):
        print(f"benchmarks.small_data: {problem or 'nothing to run'}", file=sys.stderr)
        return 2
    scale = protocol_scale(scale, args, parser)
    seeds = args.seeds or scale.seeds
    work = args.work or args.out / "work" / f"small_data-{scale.name}"
    ok, earlier = True, load_earlier(args.earlier)
    for task in tasks:
        print(f"small-data curve {task}: scale {scale.name}, {scale.protocol}, sizes {sizes}, "
              f"seeds {seeds}, epochs { {u: scale.epochs[u] for u in upstreams} }, variants {tables}")
        result = run_curves(task, scale, sizes, seeds, variants(upstreams, tables), work,
                            args.cached_only, earlier)
        result["command"] = "python -m benchmarks.small_data " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        paths = write_reports(result, args.out)
        print(paths["markdown"].read_text())
        print("written:", ", ".join(str(p) for p in paths.values()))
        ok = ok and all("error" not in r for r in result["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
