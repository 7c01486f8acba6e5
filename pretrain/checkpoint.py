"""Checkpoint files: written atomically so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ct_plugins.files import atomic_write_bytes  # temp file + fsync + os.replace

LAST = "last.pt"  # full training state, for --resume
BEST = "best.pt"  # best-by-validation weights, for export


class CheckpointError(ValueError):
    """A checkpoint that is not ours or would need unsafe unpickling to load."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    import io

    import torch

    buffer = io.BytesIO()  # checkpoints are a few MB: serialise first, then write atomically
    torch.save(payload, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint file, or ``best.pt`` inside a run directory."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only: a checkpoint is a file a user hands us, and a pickle could run code.
    # Ours hold only tensors and plain data, so the safe loader reads all of them.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: not a ct-plugins checkpoint or not safe to load "
                              f"(it holds objects besides tensors and plain data): {str(error).splitlines()[0]}") from error


def write_json_atomic(data: Any, path: Path) -> Path:
    import json

    return atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
