"""End-to-end wall time of `ct train cgcnn` against the plain upstream CLI `cgcnn-tr`, data
conversion included.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.overhead_e2e --n 1000 --epochs 3
    .venv/bin/python -m benchmarks.overhead_e2e --smoke          # seconds, tests/data

Task: `n` real MP structures (Ef, the training pool of the `mp-ef` task, records after its fixed
test part) with one seeded 80/10/10 split written to a split file; both sides train on exactly
those ids, with the same epochs, batch size, seed, learning rate (cgcnn2's default) and model
size, on one torch thread, each as its own process (interpreter start and imports included).

* plain: `cgcnn-tr -trs/-vs/-ts` on cgcnn2 folders (CIFs, id_prop.csv, cgcnn2's atom_init.json)
  written once beforehand; that preparation is timed separately and NOT in its wall time.
* `ct train cgcnn --atom-features default` and `... ct` (missing elements filled with the mean
  row): from the .jsonl records, so loading, validating and converting the data are in their
  wall time. A fresh conversion cache is used: the first ct run ("cold") converts, later runs
  ("warm": every further seed, table or variant on the same data) reuse it.

Rounds run plain / default / ct back to back (every other round in reverse order), so
machine-load drift is shared; reported are per-run
wall and CPU times (CPU: of the child process, less sensitive to other jobs on the machine),
the ratios to the plain run of the same round, and ct's own breakdown (prepare = read, validate,
table; write_dataset; upstream = cgcnn-tr in-process; evaluate = scoring val/test; other =
interpreter start, imports, writing metrics). Writes results/overhead_e2e-<scale>.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.downstream import TASKS, prepare
from ct_plugins.files import atomic_write_bytes
from ct_plugins.provenance import code_provenance

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
VARIANTS = ("default", "ct")


def task_file(n: int | None, smoke: bool, work: Path) -> tuple[Path, Path, dict]:
    """The jsonl of the timed records and a seeded 80/10/10 split file over their ids."""
    import numpy as np

    prepared = prepare(TASKS["mp-ef"], n, smoke, work / "data")
    with gzip.open(prepared.path, "rt") as handle:
        lines = [line for line in handle if line.strip()]
    pool = lines[prepared.n_test_fixed:] if not smoke else lines  # smoke: the whole sample
    pool = pool[:n] if n else pool
    path = work / "data" / f"e2e-{len(pool)}.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.writelines(pool)
    ids = [json.loads(line)["id"] for line in pool]
    order = np.random.default_rng(0).permutation(len(ids))
    n_part = max(1, round(0.1 * len(ids)))
    split = {"train": [ids[i] for i in order[2 * n_part:]], "val": [ids[i] for i in order[n_part:2 * n_part]],
             "test": [ids[i] for i in order[:n_part]]}
    split_path = work / "data" / f"e2e-{len(pool)}-split.json"
    atomic_write_bytes(split_path, json.dumps(split).encode())
    return path, split_path, {k: len(v) for k, v in split.items()}


def upstream_folders(data: Path, split_file: Path, work: Path) -> tuple[dict[str, Path], float]:
    """cgcnn2 folders of the split for the plain CLI, and how long writing them took."""
    from ct_plugins.adapters.cgcnn import write_dataset
    from ct_plugins.records import load_records, split_records

    started = time.perf_counter()
    splits = split_records(load_records(data, "target").records, 0, split_file)
    folders = {name: write_dataset(work / "plain-data" / name, recs, None) for name, recs in splits.items()}
    return folders, time.perf_counter() - started


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Wall and CPU seconds of one child process (which must succeed)."""
    cwd.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def plain_run(folders: dict[str, Path], args, work: Path, tag: str) -> dict:
    cwd = work / f"plain-{tag}"
    shutil.rmtree(cwd, ignore_errors=True)
    argv = [str(BIN / "cgcnn-tr"), "-trs", str(folders["train"]), "-vs", str(folders["val"]),
            "-ts", str(folders["test"]), "-e", str(args.epochs), "-rs", "0", "-bs", str(args.batch_size),
            "-ji", "plain", *small_model(args)]
    return {"variant": "plain cgcnn-tr", **timed(argv, cwd, THREAD_ENV)}


def ct_run(variant: str, data: Path, split_file: Path, args, work: Path, tag: str) -> dict:
    out = work / f"ct-{variant}-{tag}"
    argv = [str(BIN / "ct"), "train", "cgcnn", "--data", str(data), "--split-file", str(split_file),
            "--epochs", str(args.epochs), "--seed", "0", "--batch-size", str(args.batch_size),
            "--atom-features", variant, "--missing", "mean", "--threads", "1", "--out", str(out),
            "--overwrite", *(["--small"] if args.small else [])]
    env = {**THREAD_ENV, "CT_PLUGINS_CACHE": str(work / "cache")}
    run = timed(argv, work, env)
    metrics = json.loads((out / "metrics.json").read_text())
    timings = dict(metrics["timings_s"])
    timings["other"] = round(run["wall_s"] - metrics["wall_s"], 2)  # interpreter, imports, metrics
    return {"variant": f"ct train {variant}", **run, "timings_s": timings,
            "cif_cache": metrics.get("cif_cache"), "test_mae": metrics["test_mae"]}


def small_model(args) -> list[str]:
    return ["--atom-fea-len", "16", "--n-conv", "1", "--h-fea-len", "16"] if args.small else []


def measure(args, work: Path) -> dict:
    data, split_file, sizes = task_file(args.n, args.smoke, work)
    folders, prepare_s = upstream_folders(data, split_file, work)
    shutil.rmtree(work / "cache", ignore_errors=True)  # the first ct run converts ("cold")
    load = [os.getloadavg()]
    cold = ct_run("default", data, split_file, args, work, "cold")
    rounds = []
    for r in range(args.rounds):
        # every other round runs in reverse order, so a drift in machine load favours neither side
        names = ["plain", *VARIANTS] if r % 2 == 0 else [*reversed(VARIANTS), "plain"]
        done = {name: plain_run(folders, args, work, str(r)) if name == "plain"
                else ct_run(name, data, split_file, args, work, str(r)) for name in names}
        plain = done["plain"]
        runs = [plain] + [done[v] for v in VARIANTS]
        for run in runs[1:]:
            run["ratio_wall"] = round(run["wall_s"] / plain["wall_s"], 3)
            run["ratio_cpu"] = round(run["cpu_s"] / plain["cpu_s"], 3)
        rounds.append(runs)
        load.append(os.getloadavg())
        print(json.dumps(runs), flush=True)
    cold["ratio_wall"] = round(cold["wall_s"] / rounds[0][0]["wall_s"], 3)
    cold["ratio_cpu"] = round(cold["cpu_s"] / rounds[0][0]["cpu_s"], 3)
    return {"data": str(data), "records": sum(sizes.values()), "split": sizes,
            "prepare_plain_folders_s": round(prepare_s, 2), "cold": cold, "rounds": rounds,
            "summary": summary(rounds, cold), "load_average_1_5_15": load}


def summary(rounds: list[list[dict]], cold: dict) -> list[dict]:
    rows = []
    for i, name in enumerate(["plain cgcnn-tr", *(f"ct train {v}" for v in VARIANTS)]):
        runs = [r[i] for r in rounds]
        row = {"variant": f"{name} (warm cache)" if i else name,
               "wall_s": statistics.median(r["wall_s"] for r in runs),
               "cpu_s": statistics.median(r["cpu_s"] for r in runs)}
        if i:
            row["ratio_wall"] = statistics.median(r["ratio_wall"] for r in runs)
            row["ratio_cpu"] = statistics.median(r["ratio_cpu"] for r in runs)
            row["timings_s"] = {k: statistics.median(r["timings_s"][k] for r in runs)
                                for k in runs[0]["timings_s"]}
        rows.append(row)
    rows.append({"variant": "ct train default (cold cache: first run on this data)",
                 **{k: cold[k] for k in ("wall_s", "cpu_s", "ratio_wall", "ratio_cpu", "timings_s")}})
    return rows


def markdown(result: dict) -> str:
    keys = ("prepare", "import_upstream", "write_dataset", "upstream", "evaluate", "other")
    lines = [
        f"# `ct train cgcnn` end to end vs plain `cgcnn-tr` ({result['scale']})", "",
        f"{result['records']} real MP structures (Ef; split train/val/test {result['split']['train']}/"
        f"{result['split']['val']}/{result['split']['test']}), {result['epochs']} epochs, batch "
        f"{result['batch_size']}, seed 0, "
        f"{'tiny model (--small)' if result['small'] else 'cgcnn2 default model'}, "
        f"1 torch thread per process, {result['n_rounds']} round(s). {result['cpu_count']} CPU cores; load "
        f"average (1/5/15 min) at start {result['load_average_1_5_15'][0]}, at end "
        f"{result['load_average_1_5_15'][-1]}.",
        "",
        *([f"**Machine note:** {result['note']}", ""] if result["note"] else []),
        "Plain `cgcnn-tr` reads CIF folders written once beforehand "
        f"({result['prepare_plain_folders_s']} s, not in its time); `ct train` starts from the "
        ".jsonl records, so reading, validating and converting them is in its time. *Warm*: an "
        "earlier run converted the same data bytes (every further seed, table or variant); "
        "*cold*: the first run on the data.",
        "",
        "| run | wall s | CPU s | wall / plain | CPU / plain | " + " | ".join(keys) + " |",
        "|---|---|---|---|---|" + "---|" * len(keys),
    ]
    for row in result["summary"]:
        t = row.get("timings_s", {})
        cells = [row["variant"], f"{row['wall_s']:.1f}", f"{row['cpu_s']:.1f}",
                 f"{row['ratio_wall']:.3f}" if "ratio_wall" in row else "1",
                 f"{row['ratio_cpu']:.3f}" if "ratio_cpu" in row else "1",
                 *(f"{t[k]:.1f}" if k in t else "" for k in keys)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Breakdown columns (ct runs, seconds): prepare = read + validate the records "
              "(parsed lazily when the cache holds their validation) + load the table; "
              "import_upstream = importing cgcnn2 (torch, pymatgen, matplotlib; cgcnn-tr pays it too); "
              "write_dataset = the cgcnn2 folders (CIFs converted or linked from the cache); "
              "upstream = cgcnn-tr itself, in-process (it parses the CIFs and builds every graph, "
              "trains, tests); evaluate = val/test MAE of the best model on cgcnn-tr's own "
              "datasets; other = interpreter start, imports, writing metrics.", "",
              f"Commit {result['commit']} (dirty: {result['dirty']}); command: `{result['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead_e2e", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tests/data MP sample, 1 epoch, tiny model")
    parser.add_argument("--n", type=int, default=1000, help="records (default 1000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="tiny model sizes")
    parser.add_argument("--note", default="", help="machine caveat printed with the results")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ct-overhead-e2e"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.epochs, args.small, args.rounds = None, 1, True, 1
    scale = "smoke" if args.smoke else f"mp{args.n}"
    args.work.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "overhead_e2e", "scale": scale, "scaled_down": True, "epochs": args.epochs,
              "batch_size": args.batch_size, "small": args.small, "n_rounds": args.rounds, "seed": 0,
              "note": args.note, "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), **code_provenance(),
              "command": "python -m benchmarks.overhead_e2e "
              + " ".join(argv if argv is not None else sys.argv[1:])}
    result.update(measure(args, args.work))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"overhead_e2e-{scale}.json", json.dumps(result, indent=2).encode())
    text = markdown(result)
    atomic_write_bytes(args.out / f"overhead_e2e-{scale}.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
