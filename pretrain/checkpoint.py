"""Checkpoint files: written atomically so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ct_plugins.errors import CheckpointError
from ct_plugins.files import atomic_write_bytes, safe_torch_load  # atomic: temp file + os.replace

LAST = "last.pt"  # full training state, for --resume
BEST = "best.pt"  # best-by-validation weights, for export
__all__ = ["BEST", "LAST", "CheckpointError", "checkpoint_file", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    import io

    import torch

    buffer = io.BytesIO()  # checkpoints are a few MB: serialise first, then write atomically
    torch.save(payload, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())


REQUIRED_KEYS = ("model", "config", "scaler", "provenance", "state")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``best.pt`` inside it when it is a run directory."""
    path = Path(path)
    return path / BEST if path.is_dir() else path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint file, or ``best.pt`` inside a run directory."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; give a run directory or a .pt file of `ct pretrain`")
    checkpoint = safe_torch_load(path)
    missing = [k for k in REQUIRED_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a ct-plugins checkpoint (no {', '.join(missing)})")
    return checkpoint


def write_json_atomic(data: Any, path: Path) -> Path:
    import json

    return atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
