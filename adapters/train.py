"""``ct train``: one entry point that trains ALIGNN, MatGL MEGNet or CGCNN on real data with a table."""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ct_plugins.adapter import MODES, Mode
from ct_plugins.arguments import COUNT, SEED, positive
from ct_plugins.errors import TrainingFailed
from ct_plugins.files import atomic_write_bytes, check_output_folder, fresh_output_folder
from ct_plugins.provenance import code_provenance, data_sha256
from ct_plugins.tables import Missing

UPSTREAMS = ("alignn", "megnet", "cgcnn")
UPSTREAM_DEFAULT = "default"  # --atom-features default: the upstream's own features, no patch


@dataclass
class TrainConfig:
    upstream: str
    data: str
    target: str
    atom_features: str = "ct"
    mode: Mode = "frozen"
    epochs: int = 30
    seed: int = 0
    out: str = "ct_train_out"
    split_file: str | None = None
    batch_size: int = 32
    lr: float | None = None  # None: the upstream trainer's own default
    missing: Missing = "error"
    max_abs_target: float | None = None  # drop (and count) outliers beyond this
    threads: int = 1
    small: bool = False  # tiny model sizes, for tests and smoke runs
    overwrite: bool = False  # clear a non-empty --out (a previous run) instead of failing
    extra: dict = field(default_factory=dict)


def run(cfg: TrainConfig) -> dict:
    """Load, split, train with the upstream trainer inside the patch, write ``metrics.json``."""
    import torch

    from ct_plugins.adapters.data import check_coverage, filled_elements, load_records, split_records
    from ct_plugins.registry import load_table

    if cfg.upstream not in UPSTREAMS:
        raise ValueError(f"unknown upstream {cfg.upstream!r}; choose one of {', '.join(UPSTREAMS)}")
    if cfg.mode not in MODES:
        raise ValueError(f"unknown mode {cfg.mode!r}; choose one of {', '.join(MODES)}")
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    out = Path(cfg.out).resolve()  # upstream trainers chdir into it; relative paths would break
    check_output_folder(out, cfg.overwrite)  # before any work; cleared only once the data loaded
    table = None if cfg.atom_features == UPSTREAM_DEFAULT else load_table(cfg.atom_features)
    loaded = load_records(cfg.data, cfg.target)
    records, outliers = drop_outliers(loaded.records, cfg.max_abs_target)
    if table is not None:
        check_coverage(records, table, cfg.missing)
    filled = filled_elements(records, table, cfg.missing) if table is not None else {}
    splits = split_records(records, cfg.seed, cfg.split_file)
    fresh_output_folder(out, cfg.overwrite)
    backend = importlib.import_module(f"ct_plugins.adapters.{cfg.upstream}")
    result = require_finite(backend.train_split(splits, table, cfg, out))
    metrics = {
        "upstream": cfg.upstream,
        "upstream_version": backend.ADAPTER.installed_version(),
        **code_provenance(),  # commit and dirty flag of the code that trained
        "data_sha256": data_sha256(cfg.data),  # a cached result is reused only for the same records
        **result,
        "epochs": cfg.epochs,
        "n_train": len(splits["train"]),
        "n_val": len(splits["val"]),
        "n_test": len(splits["test"]),
        "skipped_unlabelled": len(loaded.skipped_unlabelled),
        "dropped_outliers": outliers,
        "atom_features": cfg.atom_features,
        "table": table.name if table else UPSTREAM_DEFAULT,
        "table_dim": table.dim if table else None,
        "table_sha256": table.sha256() if table else None,
        "filled_elements": filled,  # element -> atoms given a --missing mean/zero row
        "mode": cfg.mode,
        "seed": cfg.seed,
        "wall_s": round(time.perf_counter() - started, 2),
        "config": asdict(cfg),
    }
    atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return metrics


def require_finite(result: dict) -> dict:
    """A run whose model scores NaN did not train (diverged); never report it as a result."""
    import math

    bad = [k for k in ("val_mae", "test_mae") if not math.isfinite(result[k])]
    if bad:
        raise TrainingFailed(f"training diverged: {' and '.join(bad)} not finite; "
                             "lower --lr or check the targets")
    return result


def drop_outliers(records: list, limit: float | None) -> tuple[list, list[str]]:
    """Records with |target| <= limit, and the ids of those dropped (reported, never silent)."""
    if limit is None:
        return records, []
    kept = [r for r in records if abs(r.target) <= limit]
    dropped = [r.id for r in records if abs(r.target) > limit]
    if dropped:
        print(f"ct train: dropped {len(dropped)} record(s) with |target| > {limit}: "
              f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}")
    return kept, dropped


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train ALIGNN, MEGNet or CGCNN (the installed upstream) on real data with a table",
        description="Runs the upstream trainer with its node features taken from an embedding "
        "table, on .jsonl[.gz] records (fields `cif` and the target) or an upstream folder "
        "(structure files + id_prop.csv), split by --seed or --split-file. Writes OUT/metrics.json.",
    )
    parser.add_argument("upstream", choices=UPSTREAMS)
    parser.add_argument("--data", required=True, help=".jsonl[.gz] or folder with id_prop.csv")
    parser.add_argument("--target", default="target",
                        help="target field of the jsonl records (ignored for folders)")
    parser.add_argument("--atom-features", default="ct",
                        help="table name or file (see `ct tables list`), e.g. ct, ct-mt, "
                        "cgcnn92; `default` runs the upstream with its own features (no patch)")
    parser.add_argument("--mode", choices=MODES, default="frozen",
                        help="frozen: table rows are fixed features; trainable: rows are a "
                        "parameter initialised from the table (default: frozen)")
    parser.add_argument("--epochs", type=COUNT, default=30)
    parser.add_argument("--seed", type=SEED, default=0, help="split and initialisation seed")
    parser.add_argument("--out", required=True, help="output folder (metrics.json, upstream files)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (default: refuse a non-empty --out)")
    parser.add_argument("--split-file", help='JSON {"train": [ids], "val": [...], "test": [...]}')
    parser.add_argument("--batch-size", type=COUNT, default=32)
    parser.add_argument("--lr", type=positive, help="learning rate (default: the upstream's)")
    parser.add_argument("--max-abs-target", type=positive, default=None,
                        help="drop records with |target| above this and report how many "
                        "(the full OQMD set has real outliers up to 25 eV/atom)")
    parser.add_argument("--missing", choices=("error", "mean", "zero"), default="error",
                        help="elements the table lacks: fail (default) or fill with mean/zero rows")
    parser.add_argument("--threads", type=COUNT, default=1, help="torch threads (default 1)")
    parser.add_argument("--small", action="store_true", help="tiny model sizes (smoke tests)")
    parser.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from ct_plugins.adapters.data import DataError

    cfg = TrainConfig(
        upstream=args.upstream, data=args.data, target=args.target,
        atom_features=args.atom_features, mode=args.mode, epochs=args.epochs, seed=args.seed,
        out=args.out, split_file=args.split_file, batch_size=args.batch_size, lr=args.lr,
        missing=args.missing, threads=args.threads, small=args.small,
        max_abs_target=args.max_abs_target, overwrite=args.overwrite,
    )
    try:
        metrics = run(cfg)
    except DataError as exc:
        print(f"ct train: data error: {exc}", file=sys.stderr)
        return 2
    print(summary_line(metrics))
    print(f"metrics written to {Path(cfg.out) / 'metrics.json'}")
    return 0


def summary_line(metrics: dict) -> str:
    return (
        f"{metrics['upstream']} {metrics['atom_features']} ({metrics['mode']}), seed "
        f"{metrics['seed']}, {metrics['epochs']} epochs, train/val/test {metrics['n_train']}/"
        f"{metrics['n_val']}/{metrics['n_test']}: val MAE {metrics['val_mae']:.4f}, test MAE "
        f"{metrics['test_mae']:.4f} ({metrics['wall_s']:.1f} s)"
    )
