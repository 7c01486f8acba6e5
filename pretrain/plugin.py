"""`ct pretrain` and `ct export`: the pretraining commands, registered as a ct_plugins plugin.

Heavy imports (torch, pymatgen) stay inside the handlers so ``ct --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ct_plugins.arguments import COUNT, SEED, positive
from ct_plugins.errors import InputError
from ct_plugins.hookspecs import hookimpl
from ct_plugins.pretrain.cleaning import DEFAULT_MAX_ATOMS
from ct_plugins.pretrain.targets import METAL_GAP_EV


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    _add_pretrain(subparsers)
    _add_export(subparsers)
    _add_export_encoder(subparsers)


@hookimpl
def provide_node_features(name: str, source: str, missing: str) -> Any:
    """``ct-encoder:CHECKPOINT``: the CT encoder's per-atom outputs (torch loads only for it)."""
    if name != "ct-encoder":
        return None
    from ct_plugins.pretrain.encoder_features import encoder_provider

    return encoder_provider(source, missing)  # type: ignore[arg-type]


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="train a CrystalTransformer whose atom embedding becomes a table",
        description="Seeded, resumable CT pretraining. Writes DIR/last.pt (resume state), "
        "DIR/best.pt (best validation), DIR/history.json and DIR/metrics.json. "
        "Run under `torchrun --nproc_per_node N` for N processes (gloo).",
    )
    p.add_argument("--data", required=True,
                   help="comma-separated corpora or files, e.g. mp,oqmd,cmr (see pretrain/corpus.py)")
    p.add_argument("--data-root", default=None,
                   help="folder with the shared data sets (default: ../shared/data from the repo)")
    p.add_argument("--targets", default=None,
                   help="comma-separated targets (default: the --config file's, else ef,eg); 'metal' adds "
                   "a metal/non-metal classification head (BCE) labelled from each sample's eg "
                   f"(metal: eg <= {METAL_GAP_EV} eV)")
    p.add_argument("--weights", default=None,
                   help="comma-separated loss weights >= 0, one per target (default: all 1, or the "
                   "--config file's with its targets)")
    p.add_argument("--epochs", type=COUNT, default=None, help="epochs of the schedule (default: config)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--config", default=None,
                   help='JSON file {"model": {...}, "train": {...}} overriding the defaults')
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--max-minutes", type=positive, default=None,
                   help="do not start an epoch that would end after this many minutes")
    p.add_argument("--stop-after", type=COUNT, default=None,
                   help="run at most this many epochs in this call (the run stays resumable)")
    p.add_argument("--threads", type=COUNT, default=1,
                   help="torch threads per process (default 1: faster on a busy machine)")
    p.add_argument("--exclude-formulas", action="append", default=[],
                   help="file of formulas (one a line, or a CSV/JSONL with a formula column) "
                   "removed from the corpus, e.g. a downstream test set; repeatable")
    p.add_argument("--max-atoms", type=COUNT, default=None,
                   help=f"drop samples with more atoms than this (default {DEFAULT_MAX_ATOMS}; MP structures "
                   "have up to 200 atoms per cell, 99.4%% have at most 128)")
    p.add_argument("--max-samples", type=COUNT, default=None,
                   help="use a seeded random subset of this many samples (quick runs)")
    p.add_argument("--seed", type=SEED, default=None, help="seed (default: config, 0)")
    p.set_defaults(func=cmd_pretrain)


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a checkpoint's atom embedding as a table file",
        description="Rows W[:, Z-1] + b for every element seen in training; never-seen "
        "elements are left out and listed in metadata['unseen_elements'].",
    )
    _add_checkpoint_and_out(p)
    p.add_argument("--name", required=True, help="table name, e.g. ct-mt")
    p.add_argument("--description", default="", help="one-line description stored in the table")
    p.add_argument("--recipe", default=None, help="path of the script that produced the run")
    p.set_defaults(func=cmd_export)


def _add_export_encoder(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-encoder",
        help="write a checkpoint's encoder as a pickle-free file for --atom-features ct-encoder:FILE",
        description="The atom and coordinate branches and the transformer layers (no task heads, no "
        "optimiser state) as safetensors, with the model config and element counts as metadata. "
        "Loadable without unpickling: --atom-features ct-encoder:FILE.safetensors.",
    )
    _add_checkpoint_and_out(p)
    p.add_argument("--fp32", action="store_true",
                   help="keep fp32 weights (default fp16: half the size; features differ by ~1e-3)")
    p.set_defaults(func=cmd_export_encoder)


def _add_checkpoint_and_out(p: argparse.ArgumentParser) -> None:
    """What both export commands read and write."""
    p.add_argument("checkpoint", help="checkpoint file or run directory (uses its best.pt)")
    p.add_argument("--out", required=True, help="output .safetensors file")


def build_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from ct_plugins.pretrain.train import PretrainConfig

    try:
        config = PretrainConfig.from_json(args.config) if args.config else PretrainConfig()
    except (OSError, ValueError, TypeError) as error:  # unreadable, bad JSON, unknown fields
        raise InputError(f"--config {args.config}: {error}") from error
    # A recipe's --config may name its targets and weights; the command line overrides them.
    given = args.targets is not None
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip()) if given else config.train.targets
    try:
        weights = (tuple(float(w) for w in args.weights.split(",")) if args.weights
                   else (1.0,) * len(targets) if given else config.train.weights)
    except ValueError as error:
        raise InputError(f"--weights {args.weights!r}: expected comma-separated numbers") from error
    changes: dict[str, Any] = {"targets": targets, "weights": weights}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.seed is not None:
        changes["seed"] = args.seed
    return replace(config, train=replace(config.train, **changes))


def read_formula_file(path: str | Path) -> set[str]:
    """Formulas from a text file (one a line) or a CSV / JSON-lines file with a formula field."""
    import csv

    from ct_plugins.files import open_text

    path = Path(path)
    with open_text(path) as handle:
        text = handle.read()
    stem = path.name.removesuffix(".gz")
    if stem.endswith(".jsonl"):
        return {_jsonl_formula(path, number, line) for number, line in enumerate(text.splitlines(), 1)
                if line.strip()}
    if stem.endswith(".csv"):
        reader = csv.DictReader(text.splitlines())
        if "formula" not in (reader.fieldnames or []):
            raise InputError(f"--exclude-formulas {path}: no 'formula' column")
        return {row["formula"] for row in reader}
    return {line.split("#")[0].strip() for line in text.splitlines()} - {""}


def _jsonl_formula(path: Path, number: int, line: str) -> str:
    import json

    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"--exclude-formulas {path}:{number}: not JSON ({error.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("formula"), str):
        raise InputError(f"--exclude-formulas {path}:{number}: expected an object with a 'formula' string")
    return record["formula"]


def load_samples(args: argparse.Namespace, targets: tuple[str, ...], seed: int) -> tuple[list, dict]:
    """The cleaned, leakage-filtered corpus named by --data, and its provenance."""
    import hashlib
    import zlib

    import numpy as np

    from ct_plugins.files import file_sha256
    from ct_plugins.pretrain.cleaning_report import CleaningReport
    from ct_plugins.pretrain.corpus import CorpusSpec, build_corpus

    try:
        excluded = set().union(*(read_formula_file(f) for f in args.exclude_formulas))
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"--exclude-formulas: cannot read ({type(error).__name__}: {_first_line(error)})") from error
    report = CleaningReport()
    spec = CorpusSpec(
        sources=tuple(s.strip() for s in args.data.split(",") if s.strip()),
        data_dir=Path(args.data_root) if args.data_root else None,
        exclude=frozenset(excluded),
        targets=targets,
        **({"max_atoms": args.max_atoms} if args.max_atoms is not None else {}),
    )
    try:
        samples, report = build_corpus(spec, report)
    except FileNotFoundError:  # its message names the missing file and where data belongs
        raise
    except (OSError, EOFError, UnicodeDecodeError, ValueError, zlib.error) as error:  # truncated gzip, bad JSON
        where = report.last_file or f"--data {args.data}"
        raise InputError(f"{where}: cannot read ({type(error).__name__}: {_first_line(error)})") from error
    print(report.summary(), flush=True)
    if args.max_samples is not None and args.max_samples < len(samples):
        keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[: args.max_samples])
        samples = [samples[i] for i in keep]
    from ct_plugins.provenance import code_provenance

    provenance = {
        **code_provenance(),  # the code that trained; the table records its export commit too
        "sources": list(spec.sources),
        "data_dir": str(spec.data_dir or "../shared/data"),
        "data_files": dict(report.files),  # path -> sha256 of every file the corpus was read from
        "cleaning": report.to_dict(),
        "exclude_formula_files": {f: file_sha256(Path(f)) for f in args.exclude_formulas},
        "excluded_formula_count": len(excluded),
        "excluded_formulas_sha256": hashlib.sha256("\n".join(sorted(excluded)).encode()).hexdigest(),
        "max_samples": args.max_samples,
        "max_atoms": spec.max_atoms,
        "samples_used": len(samples),
    }
    return samples, provenance


def cmd_pretrain(args: argparse.Namespace) -> int:
    import os

    import torch

    # spglib prints a line per failed exact-position search (harmless in the symmetry augmenter).
    os.environ.setdefault("SPGLIB_WARNING", "OFF")

    from ct_plugins.pretrain.augment import Augmenter
    from ct_plugins.pretrain.train import Budget, pretrain
    from ct_plugins.provenance import runtime_versions

    torch.set_num_threads(args.threads)
    check_run_folder(Path(args.out), args.resume)  # before minutes of corpus loading
    config = build_config(args)
    check_targets(args.data, config.train.targets)  # before minutes of corpus loading
    samples, provenance = load_samples(args, config.train.targets, config.train.seed)
    metrics = pretrain(
        samples, config, args.out, resume=args.resume,
        budget=Budget(args.max_minutes, args.stop_after), augment=Augmenter(),
        provenance={"data": provenance, "runtime": runtime_versions()},
    )
    accuracy = f"; test accuracy {metrics['test_accuracy']}" if "test_accuracy" in metrics else ""
    print(f"metrics written to {Path(args.out) / 'metrics.json'}: test MAE {metrics['test_mae']}{accuracy}")
    return 0


def check_targets(data: str, targets: tuple[str, ...]) -> None:
    from ct_plugins.pretrain.corpus import SOURCE_LABELS, unknown_targets
    from ct_plugins.pretrain.targets import DERIVED_FROM

    unknown = unknown_targets([s.strip() for s in data.split(",") if s.strip()], targets)
    if unknown:
        raise InputError(f"--targets: unknown target(s) {', '.join(unknown)} for --data {data}; "
                         f"known: {', '.join([*SOURCE_LABELS, *DERIVED_FROM])} "
                         "(a .csv/.jsonl corpus file may add its own columns)")


def check_run_folder(out: Path, resume: bool) -> None:
    from ct_plugins.pretrain.checkpoint import LAST

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a run folder")
    has_run = (out / LAST).is_file()
    if resume and not has_run:
        raise InputError(f"--resume: {out} holds no run ({LAST} missing); drop --resume to start one")
    if has_run and not resume:
        raise InputError(f"--out {out} already holds a run; pass --resume to continue it "
                         "(with a larger --epochs to extend it) or choose a new folder")


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0]


def cmd_export_encoder(args: argparse.Namespace) -> int:
    from ct_plugins.pretrain.encoder_file import SUFFIX, write_encoder_file

    if not args.out.endswith(SUFFIX):
        raise InputError(f"--out {args.out}: an encoder file ends in {SUFFIX}")
    out = write_encoder_file(args.checkpoint, Path(args.out), half=not args.fp32)
    print(f"wrote the encoder of {args.checkpoint} to {out} ({out.stat().st_size / 1e6:.1f} MB, "
          f"{'fp32' if args.fp32 else 'fp16'}); use it as --atom-features ct-encoder:{out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ct_plugins.pretrain.export import export_table

    table = export_table(args.checkpoint, args.name, args.out, args.description, args.recipe)
    unseen = table.metadata["unseen_elements"]
    print(f"wrote {table.name}: {len(table)} elements x {table.dim} to {args.out}; "
          f"left out (never seen in training): {' '.join(unseen) or 'none'}")
    return 0
