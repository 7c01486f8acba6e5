"""The hooks a ct-plugins plugin can implement.

A plugin is a module (or object) with functions decorated ``@ct_plugins.hookimpl`` whose names
match the specs below. Plugins are found through the ``ct_plugins`` entry-point group, e.g. in a
third party's ``pyproject.toml``::

    [project.entry-points.ct_plugins]
    mymodel = "my_package.ct_adapter"

The built-in tables, adapters and commands are registered the same way.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import torch

    from ct_plugins.adapter import Adapter
    from ct_plugins.node_features import NodeFeatureProvider
    from ct_plugins.registry import TableSource
    from ct_plugins.tables import EmbeddingTable, Missing

hookspec = pluggy.HookspecMarker("ct_plugins")
hookimpl = pluggy.HookimplMarker("ct_plugins")


@hookspec
def register_tables() -> list[TableSource]:
    """Return named embedding tables this plugin provides.

    Each :class:`ct_plugins.registry.TableSource` names a table and loads it lazily, so listing
    tables stays cheap. A loader raises :class:`ct_plugins.registry.TableUnavailable` with a
    reason when its table cannot be had here (say, an optional package is missing). Later
    plugins cannot silently replace a name: duplicate names are an error.
    """


@hookspec
def register_adapters() -> list[Adapter]:
    """Return :class:`ct_plugins.adapter.Adapter` instances for upstream frameworks.

    An adapter patches the node-feature initialiser of one upstream package (ALIGNN, MatGL,
    CGCNN, or your own model) so it trains with a table's rows, and restores it afterwards.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add subcommands to the ``ct`` command line.

    Call ``subparsers.add_parser(name, help=…)``, add arguments, and set
    ``parser.set_defaults(func=handler)`` where ``handler(args) -> int | None`` runs it.
    """


@hookspec(firstresult=True)
def provide_atom_embedding(
    table: EmbeddingTable, elements: list[str] | None, trainable: bool, missing: str
) -> torch.nn.Module | None:
    """Build the embedding module that :func:`ct_plugins.atom_embedding` returns, or ``None``.

    Custom models *ask* for an embedding with ``ct_plugins.atom_embedding(table, elements,
    trainable, missing)``; a plugin implementing this hook can *provide* it instead of the default
    ``torch.nn.Embedding`` (say, a projected, sparse or device-specific variant). The first
    non-``None`` answer wins; when no plugin answers, the default is built.

    Contract for an answer: calling it with a ``LongTensor`` of indices returns one row per index
    - index = atomic number Z when ``elements`` is ``None`` (row 0 unused), otherwise the position
    in ``elements``; rows start as the table's rows (``missing`` says how absent elements are
    filled: ``"error"``, ``"mean"`` or ``"zero"``); parameters require grad iff ``trainable``.
    """


@hookspec(firstresult=True)
def provide_node_features(name: str, source: str, missing: Missing) -> NodeFeatureProvider | None:
    """Answer a node-feature spec ``NAME:SOURCE`` with a :class:`ct_plugins.node_features.NodeFeatureProvider`, or ``None``.

    Called for every ``--atom-features`` spec before it is read as a table spec, split at its
    first colon (a trailing ``:frozen`` removed): ``ct-encoder:runs/v2/best.pt`` arrives as
    ``name="ct-encoder", source="runs/v2/best.pt"``, a table spec ``ct-mt:std`` as
    ``name="ct-mt", source="std"``. Answer only for your own ``name`` (and cheaply: return
    ``None`` before any heavy import); the first non-``None`` answer wins.

    The provider's ``features(structure)`` returns one row per site, in site order, for a
    pymatgen ``Structure``: per-structure (contextual) features, where a table gives every atom
    of an element the same row. Adapters that declare ``takes_node_features = True`` consume it
    without importing the plugin. ``missing`` (``"error"``, ``"mean"``, ``"zero"``) says what to
    do with elements the provider has no trained input for, as for tables. Bad input (no such
    file, unsafe checkpoint) raises :class:`ct_plugins.errors.InputError`.
    """
