"""``ct-encoder:CHECKPOINT``: the CT encoder's per-atom outputs as node features (paper Table 4,
"atom+coordinate").

Per structure, the atom and coordinate branches go through the trained transformer exactly as in
pretraining (token order, the checkpoint's coordinate centring and scale, no augmentation, eval
mode, no grad) and every token's output row (2C wide) becomes its site's feature vector. The
model has no readout token (it reads out an atom's token, or the mean), so nothing is dropped;
rows are put back into the structure's site order.

With ``center_coords`` (v2 checkpoints) the features do not change when the whole structure is
translated; they do change with rotations and with the choice of periodic images, like the CT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ct_plugins import node_features
from ct_plugins.elements import SYMBOLS, atomic_number
from ct_plugins.errors import CheckpointError, InputError
from ct_plugins.files import file_sha256
from ct_plugins.node_features import NodeFeatureProvider, shipped_encoders
from ct_plugins.pretrain.checkpoint import checkpoint_file, load_checkpoint
from ct_plugins.pretrain.encoder_file import HEADS, SUFFIX, read_encoder_file
from ct_plugins.pretrain.model import CrystalTransformer, CTConfig
from ct_plugins.pretrain.token_order import token_order
from ct_plugins.tables import ElementNotInTableError, Missing

NAME = "ct-encoder"


@dataclass(frozen=True)
class EncoderFeatures:
    """structure -> (n_sites, 2C): the encoder's output per site."""

    model: CrystalTransformer
    allowed: frozenset[int] | None  # atomic numbers with trained inputs; None: every Z
    label: str

    def __call__(self, structure: Any) -> np.ndarray:
        z = np.array([site.specie.Z for site in structure], dtype=np.int64)
        self._check(z)
        order = token_order(z)  # as in pretraining (the encoder is order-equivariant anyway)
        coords = np.asarray(structure.cart_coords, dtype=np.float32)[order]
        with torch.inference_mode():
            hidden = self.model.encoder(self.model.embed(
                torch.from_numpy(z[order])[None], torch.from_numpy(coords)[None], torch.ones(1, dtype=torch.bool)))
        rows = np.empty((len(z), hidden.shape[-1]), dtype=np.float32)
        rows[order] = hidden[0].numpy()
        return rows

    def _check(self, z: np.ndarray) -> None:
        if self.allowed is None:
            return
        absent = sorted(set(z.tolist()) - self.allowed)
        if absent:
            names = ", ".join(SYMBOLS[a - 1] for a in absent)
            raise ElementNotInTableError(f"element(s) {names} never seen in training {self.label}; "
                                         "their encoder input is untrained: use --missing mean|zero")


def encoder_provider(source: str, missing: Missing) -> NodeFeatureProvider:
    """The provider for ``ct-encoder:SOURCE`` (a checkpoint file or a ``ct pretrain`` run folder)."""
    if not source:
        raise InputError(f"--atom-features {NAME}: name an encoder, e.g. {NAME}:ct-ef-v2 (shipped: "
                         f"{', '.join(shipped_encoders()) or 'none'}), {NAME}:runs/ct-mt-v2/best.pt "
                         f"(a `ct pretrain` .pt file or run folder) or a `ct export-encoder` {SUFFIX} file")
    path = encoder_path(source)
    # neither loader unpickles objects: safetensors, or torch.load with weights_only
    checkpoint = read_encoder_file(path) if path.suffix == SUFFIX else load_checkpoint(path)
    model, config = _model(checkpoint, path)
    seen = _seen_elements(checkpoint)
    filled = _fill_unseen(model, seen, missing)
    allowed = None if seen is None or missing != "error" else frozenset(atomic_number(e) for e in seen)
    provenance = {
        "provider": NAME, "checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
        "model_config": config.to_dict(), "epoch": checkpoint["state"].get("epoch"),
        "best_epoch": checkpoint["state"].get("best_epoch"),
        "training_commit": checkpoint["provenance"].get("data", {}).get("commit", "unknown"),
        "filled_inputs": filled, "missing": missing,
    }
    return NodeFeatureProvider(
        name=f"{NAME}:{source}", dim=config.d_model,
        compute=EncoderFeatures(model, allowed, str(path)),
        sha256=provenance["checkpoint_sha256"], provenance=provenance,
        elements=tuple(seen) if seen is not None and missing == "error" else None,
    )


def encoder_path(source: str) -> Path:
    """A shipped encoder's file (verified), else ``source`` as a checkpoint file or run folder."""
    local = Path(source)
    entry = None if local.exists() else shipped_encoders().get(source)
    if entry is None:
        return checkpoint_file(local)
    shipped = node_features.SHIPPED_ENCODERS / f"{source}{SUFFIX}"
    if not shipped.is_file():
        raise CheckpointError(f"shipped encoder {source}: {shipped} is missing from this installation; reinstall ct-plugins")
    if file_sha256(shipped) != entry["sha256"]:
        raise CheckpointError(f"shipped encoder {source}: {shipped} does not match its manifest sha256 "
                              "(tampered or corrupt); reinstall ct-plugins")
    return shipped


def _model(checkpoint: dict[str, Any], path: Path) -> tuple[CrystalTransformer, CTConfig]:
    try:
        config = CTConfig.from_dict(checkpoint["config"]["model"])
        model = CrystalTransformer(config)
        _load_encoder_weights(model, checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # other config or weights
        detail = " ".join(str(error).split())[:200]
        raise CheckpointError(f"{path}: not a CrystalTransformer checkpoint ({type(error).__name__}: {detail})") from error
    return model.eval(), config


def _load_encoder_weights(model: CrystalTransformer, state: dict[str, torch.Tensor]) -> None:
    """All weights but the task heads must be there (an encoder file stores no heads)."""
    result = model.load_state_dict(state, strict=False)
    absent = [key for key in result.missing_keys if not key.startswith(HEADS)]
    if absent or result.unexpected_keys:
        raise KeyError(f"missing {absent[:3]}, unexpected {result.unexpected_keys[:3]}")


def _seen_elements(checkpoint: dict[str, Any]) -> list[str] | None:
    counts = checkpoint["provenance"].get("element_counts")
    return None if not counts else [e for e in SYMBOLS if counts.get(e, 0) > 0]


@torch.no_grad()
def _fill_unseen(model: CrystalTransformer, seen: list[str] | None, missing: Missing) -> list[str]:
    """Give never-seen elements the mean (or zero) input row, as tables fill their gaps: their
    own rows are untouched random initialisation that would look like chemistry."""
    if seen is None or missing == "error":
        return []
    layer = model.atom_embedding
    seen_index = [atomic_number(e) - 1 for e in seen]
    unseen = [i for i in range(len(SYMBOLS)) if i not in set(seen_index)]
    rows = model.element_rows()
    target = rows[seen_index].mean(0) if missing == "mean" else torch.zeros_like(layer.bias)
    for i in unseen:
        layer.weight[:, i] = target - layer.bias  # row = W[:, i] + b
    return [SYMBOLS[i] for i in unseen]
