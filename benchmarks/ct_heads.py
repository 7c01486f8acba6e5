"""The CT itself as a property predictor: a pretraining checkpoint's heads on the fixed MP test part.

    .venv/bin/python -m benchmarks.ct_heads RUN_DIR [--json out.json]

The MP test part is every MP structure whose reduced formula falls into the fixed test hash
range of the `mp-ef` / `mp-eg` tasks (benchmarks/downstream.py); those formulas were excluded
from pretraining, so this is the CT's test MAE on unseen compositions (paper Table 1, CT row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.downstream import is_mp_test_formula


def mp_test_samples() -> list:
    """MP structures of the fixed test part, cleaned like a pretraining corpus."""
    from ct_plugins.pretrain.corpus import CorpusSpec, build_corpus

    samples, _ = build_corpus(CorpusSpec(sources=("mp_structures",), max_atoms=10_000, progress=False))
    return [s for s in samples if is_mp_test_formula(s.formula)]


def evaluate_heads(run_dir: Path, samples: list) -> dict:
    """MAE per target of the checkpoint's MP-structure heads, in target units."""
    from ct_plugins.pretrain.batching import TargetScaler
    from ct_plugins.pretrain.checkpoint import load_checkpoint
    from ct_plugins.pretrain.model import CrystalTransformer, CTConfig
    from ct_plugins.pretrain.train import evaluate_mae

    checkpoint = load_checkpoint(run_dir)
    model = CrystalTransformer(CTConfig.from_dict(checkpoint["config"]["model"])).eval()
    model.load_state_dict(checkpoint["model"])
    mae = evaluate_mae(lambda batch: model(batch.z, batch.coords, batch.has_coords), samples,
                       TargetScaler.from_dict(checkpoint["scaler"]),
                       checkpoint["config"]["train"]["per_source_heads"], 256)
    return {"test_mae": mae, "n_structures": len(samples),
            "epochs": checkpoint["state"]["epoch"], "best_epoch": checkpoint["state"]["best_epoch"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="`ct pretrain` run folder (its best.pt is used)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = {"run": str(args.run_dir), **evaluate_heads(args.run_dir, mp_test_samples())}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
