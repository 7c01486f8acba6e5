"""A CT encoder as a pickle-free file: ``ct export-encoder RUN --out X.safetensors``.

A ``ct pretrain`` checkpoint is a torch pickle (loaded with ``weights_only``) that also holds
the optimiser state and the task heads; node features need neither. This file keeps only what
``ct-encoder:`` runs (atom and coordinate branches, transformer layers), as safetensors, with
the model config and element counts as JSON metadata. fp16 halves the size (the shipped
encoders stay under 5 MB); the loader turns the weights back into fp32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ct_plugins.errors import CheckpointError
from ct_plugins.files import atomic_write_bytes, file_sha256
from ct_plugins.node_features import ENCODER_SUFFIX as SUFFIX
from ct_plugins.provenance import git_commit

FORMAT = "ct-encoder/1"
HEADS = "heads."  # task heads: not used for node features, so not stored


def encoder_state(checkpoint: dict[str, Any], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {key: value.detach().to(dtype).contiguous() for key, value in checkpoint["model"].items()
            if not key.startswith(HEADS)}


def write_encoder_file(checkpoint_path: str | os.PathLike, out: Path, half: bool = True) -> Path:
    """Write a checkpoint's encoder weights (fp16 unless ``half`` is off) with its config."""
    from safetensors.torch import save

    from ct_plugins.pretrain.checkpoint import checkpoint_file, load_checkpoint

    source = checkpoint_file(checkpoint_path)
    checkpoint = load_checkpoint(source)
    header = {
        "format": FORMAT,
        "model_config": checkpoint["config"]["model"],
        "element_counts": checkpoint["provenance"].get("element_counts", {}),
        "epoch": checkpoint["state"].get("epoch"),
        "best_epoch": checkpoint["state"].get("best_epoch"),
        "training_commit": checkpoint["provenance"].get("data", {}).get("commit", "unknown"),
        "source_checkpoint_sha256": file_sha256(source),
        "created_commit": git_commit(),
        "dtype": "float16" if half else "float32",
    }
    state = encoder_state(checkpoint, torch.float16 if half else torch.float32)
    return atomic_write_bytes(Path(out), save(state, metadata={"ct_encoder": json.dumps(header)}))


def read_encoder_file(path: Path) -> dict[str, Any]:
    """The file as a checkpoint-shaped dict (fp32 weights, no heads) for the encoder provider."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})["ct_encoder"])
            state = {key: handle.get_tensor(key).float() for key in handle.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: not a CT encoder file ({type(error).__name__}: {error})") from error
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported encoder format {header.get('format')!r} (expected {FORMAT})")
    return {
        "model": state,
        "config": {"model": header["model_config"]},
        "provenance": {"element_counts": header["element_counts"],
                       "data": {"commit": header.get("training_commit", "unknown")}},
        "state": {"epoch": header.get("epoch"), "best_epoch": header.get("best_epoch")},
    }
