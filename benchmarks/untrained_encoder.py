"""The CT-encoder row's control: the same CT checkpoint with freshly initialised weights.

    python -m benchmarks.untrained_encoder /work/ct-runs/ct-mt-v2 /work/ct-runs/ct-mt-v2-untrained/best.pt

The atom+coordinate row (``ct-encoder:RUN``) feeds a GNN the transformer's per-atom outputs.
Part of a gain could come from the architecture alone (a transformer mixing each atom with the
others' elements and coordinates); this checkpoint keeps the architecture, config and element
coverage but none of the training, so ``ct-encoder:RUN`` against ``ct-encoder:OUT`` is the
knowledge part, as ``ct`` against ``random128:std`` is for the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ct_plugins.errors import InputError
from ct_plugins.pretrain.checkpoint import load_checkpoint, save_checkpoint


def untrained_copy(checkpoint: dict[str, Any], seed: int, source: str) -> dict[str, Any]:
    """``checkpoint`` with its CT weights replaced by the model's own seeded initialisation."""
    import torch

    from ct_plugins.pretrain.model import CrystalTransformer, CTConfig

    torch.manual_seed(seed)
    model = CrystalTransformer(CTConfig.from_dict(checkpoint["config"]["model"]))
    provenance = {**checkpoint["provenance"], "untrained_control": {"seed": seed, "weights_of": "none",
                                                                     "config_of": source}}
    return {**checkpoint, "model": model.state_dict(), "provenance": provenance,
            "state": {"epoch": 0, "best_epoch": 0}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="`ct pretrain` run folder or checkpoint whose config to copy")
    parser.add_argument("out", help="where to write the untrained checkpoint (.pt)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.run)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = save_checkpoint(untrained_copy(checkpoint, args.seed, str(args.run)), Path(args.out))
    print(f"wrote {out} (config of {args.run}, weights initialised with seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
