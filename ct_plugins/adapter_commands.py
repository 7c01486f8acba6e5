"""``ct train NAME`` and ``ct NAME …`` for every adapter registered through the plugin manager."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ct_plugins.adapter import MISSING_POLICIES, MODES, Adapter
from ct_plugins.arguments import COUNT, SEED, positive
from ct_plugins.node_features import resolve_node_features
from ct_plugins.table_spec import parse_table_spec

SPEC_HELP = ("table spec NAME[:std|:pcaN][:frozen|:trainable] (see README), e.g. ct, ct-mt:std:trainable; "
             "or per-structure node features PROVIDER:SOURCE (frozen only), e.g. "
             "ct-encoder:ct-ef-v2 (shipped encoders: ct-ef-v2, ct-mt-v2) or ct-encoder:runs/ct-mt-v2/best.pt: "
             "the CT encoder's per-atom outputs (adapters: cgcnn, alignn)")


def add_adapter_commands(commands: argparse._SubParsersAction, adapters: dict[str, Adapter]) -> None:
    add_train_parser(commands, sorted(adapters))
    for name, adapter in sorted(adapters.items()):
        if adapter.command_line:
            add_passthrough_parser(commands, adapter)


def add_train_parser(commands: argparse._SubParsersAction, names: Sequence[str]) -> None:
    parser = commands.add_parser(
        "train",
        help=f"train an installed upstream ({', '.join(names) or 'none found'}) on real data with a table",
        description="Runs the upstream trainer with its node features taken from an embedding "
        "table, on .jsonl[.gz] records (fields `cif` and the target) or an upstream folder "
        "(structure files + id_prop.csv), split by --seed or --split-file. Prints train and "
        "validation MAE per epoch; writes OUT/metrics.json.",
    )
    parser.add_argument("upstream", choices=names, metavar="ADAPTER",
                        help=f"one of the registered adapters: {', '.join(names)}")
    parser.add_argument("--data", required=True, help=".jsonl[.gz] or folder with id_prop.csv")
    parser.add_argument("--target", default="target",
                        help="target field of the jsonl records (ignored for folders)")
    parser.add_argument("--atom-features", default="ct",
                        help=f"{SPEC_HELP}; `default` runs the upstream with its own features (no patch)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="frozen: table rows are fixed features; trainable: rows are a "
                        "parameter initialised from the table (default: the spec's, else frozen)")
    parser.add_argument("--epochs", type=COUNT, default=30,
                        help="epochs to train (with --patience: the most)")
    parser.add_argument("--patience", type=COUNT, default=None,
                        help="early stopping: stop once validation MAE has not improved for this "
                        "many epochs; test MAE comes from the best-validation model (cgcnn, megnet)")
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
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="error",
                        help="elements the table lacks: fail (default) or fill with mean/zero rows")
    parser.add_argument("--threads", type=COUNT, default=1, help="torch threads (default 1)")
    parser.add_argument("--small", action="store_true", help="tiny model sizes (smoke tests)")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="parse and convert the data afresh instead of reusing what an earlier "
                        "run on the same data bytes validated and wrote (cache: $CT_PLUGINS_CACHE, "
                        "default ~/.ct_plugins/cache)")
    parser.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ct_plugins.records import DataError
    from ct_plugins.training import UpstreamTrainConfig, print_epoch, run, summary_line

    cfg = UpstreamTrainConfig(
        upstream=args.upstream, data=args.data, target=args.target,
        atom_features=args.atom_features, mode=args.mode, epochs=args.epochs,
        patience=args.patience, seed=args.seed,
        out=args.out, split_file=args.split_file, batch_size=args.batch_size, lr=args.lr,
        missing=args.missing, threads=args.threads, small=args.small,
        max_abs_target=args.max_abs_target, overwrite=args.overwrite, cache=args.cache,
    )
    epochs = (f"{cfg.epochs} epochs" if cfg.patience is None
              else f"at most {cfg.epochs} epochs, patience {cfg.patience}")
    print(f"ct train: {cfg.upstream} with {cfg.atom_features}, {epochs}, seed {cfg.seed}", flush=True)
    try:
        metrics = run(cfg, on_epoch=print_epoch(cfg.epochs))
    except DataError as exc:
        print(f"ct train: data error: {exc}", file=sys.stderr)
        return 2
    print(summary_line(metrics))
    print(f"metrics written to {Path(cfg.out) / 'metrics.json'}")
    return 0


# --- ct NAME: the upstream's own command line inside the patch --------------------------------
def add_passthrough_parser(commands: argparse._SubParsersAction, adapter: Adapter) -> None:
    text = f"run the real {adapter.upstream} trainer `{adapter.command_line}` with a table as atom features"
    # '+' prefix: every '-' argument goes to the upstream trainer, ours are parsed after.
    parser = commands.add_parser(adapter.name, help=text, prefix_chars="+", add_help=False)
    parser.add_argument("upstream_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_passthrough_handler(adapter, text))


def own_options(adapter: Adapter, text: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"ct {adapter.name}", allow_abbrev=False, add_help=False,
        description=f"{text}. All other arguments are passed to {adapter.command_line} unchanged; "
        "its own help follows below.",
    )
    parser.add_argument("--atom-features", default=None, help=SPEC_HELP)
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="frozen (default) or trainable rows, unless the spec names a mode")
    parser.add_argument("--missing", choices=MISSING_POLICIES, default="error",
                        help="elements the table lacks: fail (default) or fill with mean/zero")
    parser.add_argument("--threads", type=COUNT, default=None, help="torch threads (default: torch's)")
    return parser


def _passthrough_handler(adapter: Adapter, text: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        parser = own_options(adapter, text)
        if any(a in ("-h", "--help") for a in args.upstream_args):
            parser.print_help()
            print(f"\n--- {adapter.command_line} ---")
            return adapter.command_line_help()
        ours, rest = parser.parse_known_args(list(args.upstream_args))
        from ct_plugins.training import subnormal_floats_flushed

        with subnormal_floats_flushed():
            return _run_passthrough(adapter, ours, rest)

    return handler


def _run_passthrough(adapter: Adapter, ours: argparse.Namespace, rest: list[str]) -> int:
    if ours.threads:
        import torch

        torch.set_num_threads(ours.threads)
    if ours.atom_features:
        provider = resolve_node_features(ours.atom_features, ours.missing, ours.mode)
        if provider is not None:
            adapter.check_node_features(provider)
            return adapter.run_command_line(rest, None, "frozen", ours.missing, node_features=provider)
    spec = parse_table_spec(ours.atom_features) if ours.atom_features else None
    return adapter.run_command_line(rest, spec, ours.mode, ours.missing)
