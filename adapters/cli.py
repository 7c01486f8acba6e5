"""``ct train``, ``ct cgcnn``, ``ct alignn`` and ``ct demo``: argument handling only."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from ct_plugins.adapter import MODES
from ct_plugins.arguments import COUNT

PASSTHROUGH = {
    "cgcnn": ("cgcnn-tr", "run the real CGCNN trainer `cgcnn-tr` with a table as atom features"),
    "alignn": ("python -m alignn.train_alignn",
               "run the real ALIGNN trainer `train_alignn` with a table as atom features"),
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    from ct_plugins.adapters.demo import add_demo_parser
    from ct_plugins.adapters.train import add_train_parser

    add_train_parser(subparsers)
    for name, (upstream, text) in PASSTHROUGH.items():
        # '+' prefix: every '-' argument goes to the upstream trainer, ours are parsed after.
        parser = subparsers.add_parser(name, help=text, prefix_chars="+", add_help=False)
        parser.add_argument("upstream_args", nargs=argparse.REMAINDER)
        parser.set_defaults(func=_passthrough_handler(name, upstream, text))
    add_demo_parser(subparsers)


def own_options(prog: str, upstream: str, text: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False, add_help=False,
        description=f"{text}. All other arguments are passed to {upstream} unchanged; its "
        "own help follows below.",
    )
    parser.add_argument("--atom-features", default=None,
                        help="table name or file, optionally NAME:frozen|trainable "
                        "(ct, ct-mt, cgcnn92, megnet16, ...)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="frozen (default) or trainable rows")
    parser.add_argument("--missing", choices=("error", "mean", "zero"), default="error",
                        help="elements the table lacks: fail (default) or fill with mean/zero")
    parser.add_argument("--threads", type=COUNT, default=None, help="torch threads (default: torch's)")
    return parser


def split_args(prog: str, upstream: str, text: str, argv: Sequence[str]):
    """(our options, the upstream's arguments); ``None`` options when help was asked for."""
    parser = own_options(prog, upstream, text)
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return None, list(argv)
    ours, rest = parser.parse_known_args(list(argv))
    return ours, rest


def _passthrough_handler(name: str, upstream: str, text: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        import importlib

        ours, rest = split_args(f"ct {name}", upstream, text, args.upstream_args)
        module = importlib.import_module(f"ct_plugins.adapters.{name}")
        if ours is None:
            print(f"\n--- {upstream} ---")
            return module.upstream_help()
        if ours.threads:
            import torch

            torch.set_num_threads(ours.threads)
        return module.run_from_command_line(rest, ours.atom_features, ours.mode, ours.missing)

    return handler
