"""Checkpoint files: written atomically so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ct_plugins.files import atomic_write_bytes  # temp file + fsync + os.replace

LAST = "last.pt"  # full training state, for --resume
BEST = "best.pt"  # best-by-validation weights, for export


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
    # Our own files hold numpy arrays and plain dicts besides tensors; they are trusted input.
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json_atomic(data: Any, path: Path) -> Path:
    import json

    return atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
