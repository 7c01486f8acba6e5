"""The adapters plugin: ALIGNN, MatGL MEGNet and CGCNN adapters and ``ct demo``, registered
through the ``ct_plugins`` entry-point group like any third-party plugin (``ct train NAME`` and
``ct NAME …`` come from the core for every registered adapter).

Heavy imports (torch, upstream packages) happen only when a command runs or a patch is entered.
"""

from __future__ import annotations

import argparse

from ct_plugins.adapter import Adapter
from ct_plugins.hookspecs import hookimpl


@hookimpl
def register_adapters() -> list[Adapter]:
    from ct_plugins.adapters.alignn import ALIGNNAdapter
    from ct_plugins.adapters.cgcnn import CGCNNAdapter
    from ct_plugins.adapters.megnet import MEGNetAdapter

    return [ALIGNNAdapter(), MEGNetAdapter(), CGCNNAdapter()]


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    from ct_plugins.adapters.demo import add_demo_parser

    add_demo_parser(subparsers)
