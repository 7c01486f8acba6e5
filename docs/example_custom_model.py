"""Example (docs/adapters.md): a small torch-geometric crystal model whose atom embedding is a
CT table. Needs ``pip install torch_geometric`` (not a dependency of ct-plugins); copy this file
into your project. ``tests/test_adapter_embedding.py`` trains it on real structures.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, global_mean_pool

import ct_plugins


class TinyCrystalGNN(torch.nn.Module):
    def __init__(self, table: str = "ct-mt", hidden: int = 32, trainable: bool = True) -> None:
        super().__init__()
        # index = Z; elements the table lacks (never seen in pretraining) start as zero rows
        self.embed = ct_plugins.atom_embedding(table, trainable=trainable, missing="zero")
        self.conv = GCNConv(self.embed.embedding_dim, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, data: Data) -> torch.Tensor:
        x = self.embed(data.z)
        x = self.conv(x, data.edge_index).relu()
        return self.head(global_mean_pool(x, data.batch)).squeeze(-1)


def to_graph(structure, target: float, cutoff: float = 4.0) -> Data:
    """A pymatgen Structure as a PyG graph: nodes = atoms (Z), edges = neighbours within cutoff."""
    src, dst, _, _ = structure.get_neighbor_list(cutoff)
    return Data(
        z=torch.tensor(structure.atomic_numbers, dtype=torch.long),
        edge_index=torch.as_tensor(np.stack([src, dst]), dtype=torch.long),
        y=torch.tensor([target], dtype=torch.float32),
        num_nodes=len(structure),
    )
