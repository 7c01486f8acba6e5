"""ct-plugins: CrystalTransformer universal atomic embeddings for upstream crystal GNNs."""

from __future__ import annotations

import importlib.metadata

from ct_plugins.embedding import atom_embedding
from ct_plugins.hookspecs import hookimpl
from ct_plugins.registry import TableSource, load_table
from ct_plugins.tables import EmbeddingTable

try:
    __version__ = importlib.metadata.version("ct-plugins")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = ["EmbeddingTable", "TableSource", "atom_embedding", "hookimpl", "load_table", "__version__"]
