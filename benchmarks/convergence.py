"""Convergence speed: how many epochs a table needs to reach the default's best validation MAE.

    .venv/bin/python -m benchmarks.convergence WORK [--json out.json] [--earlier previous.json]

WORK is a benchmark work folder (``--work`` of ``benchmarks.run``; runs in
``WORK/<task>/<upstream>/<table-mode>/seed<k>/metrics.json``, each with its per-epoch
``history``). Per task, back-end and variant, for every seed the variant shares with the
default: the first epoch whose validation MAE is at or below the default's best, divided by the
epoch of the default's best. A ratio below 1 means the table gets there faster; "not reached"
means it never did within the run's epochs. ``--earlier`` keeps the rows of an earlier JSON
whose runs are no longer in WORK (run folders need not outlive a machine).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

DEFAULT_KEY = "default-frozen"  # run_key of the upstream's own features
_PROTOCOL_SUFFIX = re.compile(r"-(patience|epochs)\d+$")  # run_key of an early-stopped or longer run


def default_key(key: str) -> str:
    """The default run of the same protocol: early-stopped and longer runs race their own default."""
    suffix = _PROTOCOL_SUFFIX.search(key)
    return DEFAULT_KEY + (suffix.group(0) if suffix else "")


def read_runs(work: Path) -> dict[tuple[str, str, str], dict[int, list[float]]]:
    """(task, upstream, run key) -> seed -> validation MAE per epoch."""
    runs: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(dict)
    for metrics in sorted(Path(work).glob("*/*/*/seed*/metrics.json")):
        seed_dir = metrics.parent
        history = json.loads(metrics.read_text()).get("history") or []
        curve = [row["val_mae"] for row in history if row.get("val_mae") is not None]
        if curve:
            key = (seed_dir.parents[2].name, seed_dir.parents[1].name, seed_dir.parent.name)
            runs[key][int(seed_dir.name.removeprefix("seed"))] = curve
    return runs


def epochs_ratio(variant: list[float], default: list[float]) -> float | None:
    """First epoch where ``variant`` reaches min(``default``), over the epoch of that minimum."""
    target = min(default)
    best_epoch = default.index(target) + 1
    reached = next((i + 1 for i, mae in enumerate(variant) if mae <= target), None)
    return None if reached is None else reached / best_epoch


def convergence(work: Path) -> list[dict]:
    runs = read_runs(work)
    rows = []
    for (task, upstream, key), seeds in sorted(runs.items()):
        default = runs.get((task, upstream, default_key(key)), {})
        if key == default_key(key) or not default:
            continue
        shared = sorted(set(seeds) & set(default))
        ratios = {seed: epochs_ratio(seeds[seed], default[seed]) for seed in shared}
        reached = [r for r in ratios.values() if r is not None]
        rows.append({"task": task, "upstream": upstream, "variant": key, "seeds": shared,
                     "ratio_per_seed": ratios,
                     "mean_ratio": sum(reached) / len(reached) if reached else None,
                     "reached": f"{len(reached)}/{len(shared)}"})
    return rows


def with_earlier(rows: list[dict], earlier: Path) -> list[dict]:
    """``rows`` plus the rows of an earlier JSON that ``rows`` does not cover, marked as such."""
    def key(row: dict) -> tuple[str, str, str]:
        return row["task"], row["upstream"], row["variant"]

    fresh = {key(row) for row in rows}
    kept = [{**row, "carried_from": row.get("carried_from", earlier.name)}
            for row in json.loads(earlier.read_text()) if key(row) not in fresh]
    return sorted(rows + kept, key=key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--earlier", type=Path, help="an earlier --json output: its rows for runs "
                        "not in WORK are kept (marked by the file they came from)")
    args = parser.parse_args(argv)
    for path, is_ok, what in ((args.work, Path.is_dir, "a folder"), (args.earlier, Path.is_file, "a file")):
        if path is not None and not is_ok(path):
            print(f"benchmarks.convergence: {path} is not {what}", file=sys.stderr)
            return 2
    rows = convergence(args.work)
    if args.earlier:
        try:
            rows = with_earlier(rows, args.earlier)
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, or not rows of this script
            print(f"benchmarks.convergence: {args.earlier} is not a convergence JSON ({exc!r})", file=sys.stderr)
            return 2
    print("| task | back-end | variant | epochs to the default's best / default's | seeds reaching it |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = "not reached" if row["mean_ratio"] is None else f"{row['mean_ratio']:.2f}"
        earlier = f" (from {row['carried_from']})" if "carried_from" in row else ""
        print(f"| {row['task']} | {row['upstream']} | {row['variant']} | {ratio} | {row['reached']}{earlier} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
