"""``ct_plugins.atom_embedding``: a table as a ``torch.nn.Embedding`` for custom models."""

from __future__ import annotations

from collections.abc import Sequence

from ct_plugins.elements import symbol
from ct_plugins.registry import load_table
from ct_plugins.tables import EmbeddingTable, Missing


def atom_embedding(
    table: str | EmbeddingTable = "ct-mt",
    elements: Sequence[str | int] | None = None,
    trainable: bool = True,
    missing: Missing | None = None,
):
    """See :func:`ct_plugins.atom_embedding`; asks plugins first, then builds the default."""
    from ct_plugins.plugins import plugin_manager

    resolved = table if isinstance(table, EmbeddingTable) else load_table(table)
    policy: Missing = missing or "error"  # fill only when asked, like EmbeddingTable.rows
    names = None if elements is None else [symbol(e) if isinstance(e, int) else e for e in elements]
    provided = plugin_manager().hook.provide_atom_embedding(
        table=resolved, elements=names, trainable=trainable, missing=policy)
    return provided if provided is not None else default_embedding(resolved, names, trainable, policy)


def default_embedding(
    table: EmbeddingTable, elements: list[str] | None, trainable: bool, missing: Missing
):
    import torch

    rows = table.by_atomic_number(missing) if elements is None else table.rows(elements, missing)
    embedding = torch.nn.Embedding.from_pretrained(torch.as_tensor(rows), freeze=not trainable)
    return embedding
