"""Turn a CT checkpoint into an EmbeddingTable: row of element Z = W[:, Z-1] + b.

Only elements that occur in the training split are exported. A never-seen element's row is
its untouched random initialisation plus the shared bias, which would look like a real
embedding to a downstream model; such elements are listed in ``metadata["unseen_elements"]``
and left out, so an adapter fails (or fills, if asked) loudly instead of using noise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ct_plugins.elements import SYMBOLS, atomic_number
from ct_plugins.provenance import git_commit
from ct_plugins.tables import EmbeddingTable

def table_from_checkpoint(
    checkpoint: dict[str, Any],
    name: str,
    description: str = "",
    recipe: str | None = None,
) -> EmbeddingTable:
    rows = state_dict_rows(checkpoint["model"])
    counts: dict[str, int] = checkpoint["provenance"]["element_counts"]
    seen = [e for e in SYMBOLS if counts.get(e, 0) > 0]
    matrix = rows[[atomic_number(e) - 1 for e in seen]]
    metadata = {
        "description": description or f"CrystalTransformer atomic embedding ({name})",
        "source_data": checkpoint["provenance"].get("data", {}),
        "training_config": checkpoint["config"],
        "target_scaler": checkpoint["scaler"],
        "metrics": checkpoint.get("metrics", {}),
        "history": checkpoint.get("state", {}).get("history", []),
        "element_counts": {e: counts[e] for e in seen},
        "unseen_elements": [e for e in SYMBOLS if counts.get(e, 0) == 0],
        "split_sizes": checkpoint["provenance"].get("split_sizes", {}),
        "task_counts": checkpoint["provenance"].get("task_counts", {}),
        "created_commit": git_commit(),
        "training_commit": checkpoint["provenance"].get("data", {}).get("commit", "unknown"),
        "training_dirty": checkpoint["provenance"].get("data", {}).get("dirty"),
        "runtime": checkpoint["provenance"].get("runtime", {}),  # python/torch that trained
        "recipe": recipe or "",
        "row_definition": "W[:, Z-1] + b of the CT atom-embedding Linear(100, C) layer",
    }
    return EmbeddingTable(name, tuple(seen), matrix, metadata)


def state_dict_rows(state_dict: dict[str, Any]) -> np.ndarray:
    """(100, C) matrix: row Z-1 = W[:, Z-1] + b of the atom-embedding layer."""
    weight = state_dict["atom_embedding.weight"].detach().cpu().numpy()
    bias = state_dict["atom_embedding.bias"].detach().cpu().numpy()
    return (weight.T + bias).astype(np.float32)


def export_table(
    checkpoint_path: str | os.PathLike,
    name: str,
    out: str | os.PathLike,
    description: str = "",
    recipe: str | None = None,
) -> EmbeddingTable:
    """Read a checkpoint (file, or run directory → its best.pt) and save its table to ``out``."""
    from ct_plugins.pretrain.checkpoint import load_checkpoint

    table = table_from_checkpoint(load_checkpoint(checkpoint_path), name, description, recipe)
    table.save(out)
    return table
