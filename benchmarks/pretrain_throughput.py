"""CT training throughput on real data: small vs paper-size model, compositions or structures.

    .venv/bin/python -m benchmarks.pretrain_throughput [--data mp_structures] [--threads 1]
        [--batches 20] [--json out.json]

For each model, in a fresh process (so peak memory is its own): structures/s of full training
steps (forward + backward + AdamW) on length-bucketed batches of real formulas, the achieved
FLOP/s (≈ 3 × forward FLOPs of the real tokens) and, measured in the same process right after,
the FLOP/s of a plain fp32 matmul (1024³): their ratio says how much of the CPU the model uses.
For structures it also times the data side of a step (augmentation + collate), which the
model's FLOP/s leave out.
This is a benchmark script, not a test; numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

MODELS = {
    "small": {"n_layers": 3},  # d_model 256, 8 heads, ff 512: what the v1 tables use
    "medium": {"n_layers": 5},
    "paper": {},  # 8 layers: the paper's CrystalTransformer
}


def matmul_flops(size: int = 1024, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def measure(model_name: str, threads: int, batches: int, batch_size: int, source: str, max_atoms: int) -> dict:
    import numpy as np
    import torch

    from ct_plugins.pretrain.augment import Augmenter
    from ct_plugins.pretrain.batching import TargetScaler, bucket_batches, collate, discover_tasks
    from ct_plugins.pretrain.corpus import CorpusSpec, build_corpus
    from ct_plugins.pretrain.model import CrystalTransformer, CTConfig, count_parameters, forward_flops
    from ct_plugins.pretrain.train import masked_l1

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    samples, _ = build_corpus(CorpusSpec(sources=(source,), max_atoms=max_atoms, progress=False))
    augment, rng = Augmenter(), np.random.default_rng(0)
    loaded_rss = _peak_rss_mb()  # corpus + libraries, before the model exists
    tasks = discover_tasks(samples, ("ef", "eg"), True)
    scaler = TargetScaler.fit(samples, tasks, True)
    config = replace(CTConfig(**MODELS[model_name]), tasks=tasks)
    model = CrystalTransformer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    weights = torch.ones(len(tasks))
    lengths = [len(s.z) for s in samples]
    plan = bucket_batches(lengths, batch_size, np.random.default_rng(0))[: batches + 2]
    done, flops, elapsed, data_elapsed = 0, 0.0, 0.0, 0.0
    for step, indices in enumerate(plan):
        data_start = time.perf_counter()
        batch = collate([augment(samples[i], rng) for i in indices], scaler, True)
        start = time.perf_counter()
        if step >= 2:
            data_elapsed += start - data_start
        loss = masked_l1(model(batch.z, batch.coords, batch.has_coords), batch, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:  # the first steps allocate and warm up
            elapsed += time.perf_counter() - start
            done += batch.size
            flops += 3 * forward_flops(config, int(np.sum(np.asarray(lengths)[indices])), batch.z.shape[1])
    achieved = flops / elapsed
    reference = matmul_flops()
    return {
        "data": source, "samples": len(samples), "max_atoms": max_atoms,
        "mean_tokens": float(np.mean(lengths)),
        "model": model_name, "n_layers": config.n_layers, "d_model": config.d_model,
        "parameters": count_parameters(model), "threads": threads, "batch_size": batch_size,
        "batches_timed": batches, "structures_per_s": done / elapsed,
        "epoch_minutes_90k": 90_000 / (done / elapsed) / 60,
        "data_side_s_per_structure": data_elapsed / done,
        "structures_per_s_with_data_side": done / (elapsed + data_elapsed),
        "achieved_gflops": achieved / 1e9, "matmul_gflops": reference / 1e9,
        "ratio_to_matmul": achieved / reference,
        "peak_rss_mb": _peak_rss_mb(), "peak_rss_after_corpus_load_mb": loaded_rss,
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", default="small,paper", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--data", default="mp_compositions", help="one corpus source (pretrain/corpus.py SOURCES)")
    parser.add_argument("--max-atoms", type=int, default=64, help="longest sample kept, in atoms")
    parser.add_argument("--json", default=None,
                        help="results file (default: benchmarks/results/pretrain_throughput-DATA.json)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.threads, args.batches, args.batch_size, args.data, args.max_atoms)))
        return 0
    results = []
    for name in args.models.split(","):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.pretrain_throughput", "--one", name, "--threads",
             str(args.threads), "--batches", str(args.batches), "--batch-size", str(args.batch_size),
             "--data", args.data, "--max-atoms", str(args.max_atoms)],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{name:6s} {r['n_layers']} layers, {r['parameters'] / 1e6:.2f} M params on {r['data']} "
              f"({r['mean_tokens']:.1f} atoms/sample): {r['structures_per_s']:.0f} structures/s "
              f"({r['structures_per_s_with_data_side']:.0f}/s with augmentation + collate; "
              f"{r['epoch_minutes_90k']:.1f} min per 90k), "
              f"{r['achieved_gflops']:.1f} GFLOP/s = {100 * r['ratio_to_matmul']:.0f}% of matmul "
              f"{r['matmul_gflops']:.1f} GFLOP/s, peak RSS {r['peak_rss_mb']:.0f} MB "
              f"({r['peak_rss_after_corpus_load_mb']:.0f} MB after loading the corpus) "
              f"({args.threads} thread(s), batch {args.batch_size})", flush=True)
    write_results(results, args)
    return 0


def write_results(results: list[dict], args: argparse.Namespace) -> None:
    """The file the README's throughput numbers are quoted from, with what produced them."""
    from ct_plugins.files import atomic_write_bytes
    from ct_plugins.provenance import code_provenance, runtime_versions

    document = {"results": results, "data": args.data, "max_atoms": args.max_atoms,
                "threads": args.threads, "batch_size": args.batch_size,
                "batches_timed": args.batches, **code_provenance(), "runtime": runtime_versions()}
    path = Path(args.json or RESULTS / f"pretrain_throughput-{args.data}.json")
    atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())
    print(f"written: {path}")


if __name__ == "__main__":
    sys.exit(main())
