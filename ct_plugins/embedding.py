"""``ct_plugins.atom_embedding``: a table as a ``torch.nn.Embedding`` for custom models."""

from __future__ import annotations

from collections.abc import Sequence

from ct_plugins.elements import symbol
from ct_plugins.plugins import plugin_manager
from ct_plugins.registry import load_table
from ct_plugins.table_spec import parse_table_spec
from ct_plugins.tables import EmbeddingTable, Missing


def atom_embedding(
    table: str | EmbeddingTable = "ct-mt",
    elements: Sequence[str | int] | None = None,
    trainable: bool | None = None,
    missing: Missing | None = None,
):
    """A ``torch.nn.Embedding`` whose rows start as an embedding table (for your own models).

    ``table``: a table spec ``NAME[:std|:pcaN][:frozen|:trainable]`` (``"ct-mt"``,
    ``"megnet16:std"``, ``"ct:frozen"``; a name or a file path) or an EmbeddingTable.
    ``elements=None``: index = atomic number Z, shape (101, d), row 0 unused (zeros).
    ``elements=[...]``: index = position in that list (symbols or Z).
    ``missing``: rows for elements the table lacks: ``"error"`` (``None``, the default: a
    table without every element H..Fm then needs ``elements`` or an explicit fill),
    ``"mean"`` or ``"zero"``.
    ``trainable``: rows are fine-tuned (True) or fixed (``requires_grad=False``); None: the
    spec's mode, else trainable.
    Plugins may supply the module through the ``provide_atom_embedding`` hook.
    """
    if isinstance(table, EmbeddingTable):
        resolved, fine_tune = table, True if trainable is None else trainable
    else:
        spec = parse_table_spec(table)
        if trainable is not None:
            spec = spec.with_mode("trainable" if trainable else "frozen")
        resolved, fine_tune = load_table(spec), spec.mode != "frozen"
    policy: Missing = missing or "error"  # fill only when asked, like EmbeddingTable.rows
    names = None if elements is None else [symbol(e) if isinstance(e, int) else e for e in elements]
    provided = plugin_manager().hook.provide_atom_embedding(
        table=resolved, elements=names, trainable=fine_tune, missing=policy)
    return provided if provided is not None else default_embedding(resolved, names, fine_tune, policy)


def default_embedding(
    table: EmbeddingTable, elements: list[str] | None, trainable: bool, missing: Missing
):
    import torch

    rows = table.by_atomic_number(missing) if elements is None else table.rows(elements, missing)
    return torch.nn.Embedding.from_pretrained(torch.as_tensor(rows), freeze=not trainable)
