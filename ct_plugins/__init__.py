"""ct-plugins: CrystalTransformer universal atomic embeddings for upstream crystal GNNs."""

from __future__ import annotations

import importlib.metadata

from ct_plugins.hookspecs import hookimpl
from ct_plugins.registry import TableSource, load_table
from ct_plugins.tables import EmbeddingTable

def atom_embedding(table="ct-mt", elements=None, trainable=True, missing=None):
    """A ``torch.nn.Embedding`` whose rows start as an embedding table (for your own models).

    ``table``: a name (``"ct-mt"``, ``"megnet16"``, ...), a file path or an EmbeddingTable.
    ``elements=None``: index = atomic number Z, shape (101, d), row 0 unused (zeros).
    ``elements=[...]``: index = position in that list (symbols or Z).
    ``missing``: rows for elements the table lacks: ``"error"`` (``None``, the default: a
    table without every element H..Fm then needs ``elements`` or an explicit fill),
    ``"mean"`` or ``"zero"``.
    ``trainable``: rows are fine-tuned (True) or fixed (``requires_grad=False``).
    Plugins may supply the module through the ``provide_atom_embedding`` hook.
    """
    from ct_plugins.adapters.embedding import atom_embedding as build

    return build(table, elements, trainable, missing)


try:
    __version__ = importlib.metadata.version("ct-plugins")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = ["EmbeddingTable", "TableSource", "atom_embedding", "hookimpl", "load_table", "__version__"]
