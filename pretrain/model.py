"""CrystalTransformer (CT): the model whose atom-embedding layer becomes the exported table.

Per atom, a one-hot element vector over Z 1..100 goes through ``Linear(100, C)`` (so the weight
column of element Z plus the bias *is* that element's C-dim embedding) and the Cartesian
coordinates through ``Linear(3, C)``; the two are concatenated to d_model = 2C and fed to a
standard Transformer encoder without positional encoding (atoms are a set). The first token's
output is read out and one small MLP head per task predicts a standardised target (or, for a
binary target such as ``metal``, a logit).

Composition mode: a sample without coordinates has its whole coordinate branch set to zero, so
only the element embedding carries information; one batch may mix both kinds of sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ct_plugins.elements import MAX_Z

PAD_Z = 0  # atomic number used for padded token positions


@dataclass
class CTConfig:
    """Architecture hyper-parameters; the defaults are the paper's (Jin, Du et al.)."""

    embed_dim: int = 128  # C: size of the atomic embedding and of the coordinate embedding
    n_layers: int = 8
    n_heads: int = 8
    ff_dim: int = 512
    dropout: float = 0.1
    head_hidden: int = 128
    # Hidden layers of every head's MLP: more capacity for a head (Eg) without touching the
    # encoder; 1 is the v1/v2 head (same parameter names, so their checkpoints load unchanged).
    head_layers: int = 1
    tasks: tuple[str, ...] = field(default_factory=lambda: ("ef",))
    # "first": the paper's readout of token 0 (depends on which atom comes first: the data side
    # orders atoms, the augmenter may shuffle them); "mean": order-invariant masked mean.
    readout: str = "first"
    # Raw Cartesian coordinates reach tens of Å while element rows start near 0.1, so through
    # Linear(3, C) they drown the chemistry; centring each structure on its centroid and
    # dividing by a length scale keeps both branches comparable (v1 tables: False / 1.0).
    center_coords: bool = False
    coord_scale: float = 1.0  # Å

    def __post_init__(self) -> None:
        """A --config file's value fails here, before any data is read."""
        if not (isinstance(self.head_layers, int) and self.head_layers >= 1):
            raise ValueError(f"head_layers must be an integer >= 1, not {self.head_layers!r}")

    @property
    def d_model(self) -> int:
        return 2 * self.embed_dim

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tasks": list(self.tasks)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CTConfig:
        return cls(**{**raw, "tasks": tuple(raw["tasks"])})


class CrystalTransformer(nn.Module):
    def __init__(self, config: CTConfig) -> None:
        super().__init__()
        if config.readout not in ("first", "mean"):
            raise ValueError(f"readout must be 'first' or 'mean', not {config.readout!r}")
        self.config = config
        self.atom_embedding = nn.Linear(MAX_Z, config.embed_dim)
        self.coord_embedding = nn.Linear(3, config.embed_dim)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.ff_dim,
            dropout=config.dropout,
            batch_first=True,
        )
        # The nested-tensor fast path only changes speed, and only in eval: keep one code path.
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.heads = nn.ModuleDict({task: self._head(config) for task in config.tasks})

    @staticmethod
    def _head(config: CTConfig) -> nn.Module:
        layers: list[nn.Module] = [nn.Linear(config.d_model, config.head_hidden), nn.SiLU()]
        for _ in range(config.head_layers - 1):
            layers += [nn.Linear(config.head_hidden, config.head_hidden), nn.SiLU()]
        return nn.Sequential(*layers, nn.Linear(config.head_hidden, 1))

    def element_rows(self) -> torch.Tensor:
        """(MAX_Z, C): row Z-1 is W[:, Z-1] + b, the embedding of element Z."""
        return self.atom_embedding.weight.t() + self.atom_embedding.bias

    def embed(self, z: torch.Tensor, coords: torch.Tensor, has_coords: torch.Tensor) -> torch.Tensor:
        """Token features (B, L, 2C). Same result as one-hot @ W.T + b, without the one-hot."""
        atoms = self.element_rows()[(z - 1).clamp(min=0)]
        coords = self._centred(z, coords) if self.config.center_coords else coords
        positions = self.coord_embedding(coords / self.config.coord_scale) * has_coords[:, None, None].to(coords.dtype)
        return torch.cat([atoms, positions], dim=-1)

    @staticmethod
    def _centred(z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates relative to each structure's centroid (padding stays at zero)."""
        real = (z != PAD_Z).unsqueeze(-1).to(coords.dtype)
        centroid = (coords * real).sum(1, keepdim=True) / real.sum(1, keepdim=True).clamp(min=1.0)
        return (coords - centroid) * real

    def encode(self, z: torch.Tensor, coords: torch.Tensor, has_coords: torch.Tensor) -> torch.Tensor:
        """Pooled representation (B, 2C) of a padded batch; z == PAD_Z marks padding."""
        padding = z == PAD_Z
        hidden = self.encoder(self.embed(z, coords, has_coords), src_key_padding_mask=padding)
        if self.config.readout == "first":
            return hidden[:, 0]
        keep = (~padding).unsqueeze(-1).to(hidden.dtype)
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def forward(self, z: torch.Tensor, coords: torch.Tensor, has_coords: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (logits for binary tasks) (B, n_tasks), in ``config.tasks`` order."""
        pooled = self.encode(z, coords, has_coords)
        return torch.cat([self.heads[task](pooled) for task in self.config.tasks], dim=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(config: CTConfig, tokens: int, padded_length: int) -> float:
    """Approximate multiply-add FLOPs (×2) of one forward pass over ``tokens`` real tokens.

    Counts the dense layers (projections, feed-forward) per token and attention scores/values
    per token × padded length; heads and layer norms are negligible. Backward ≈ 2× forward.
    """
    d, f = config.d_model, config.ff_dim
    per_token_layer = 2 * (4 * d * d + 2 * d * f) + 2 * 2 * d * padded_length
    embed = 2 * (MAX_Z + 3) * config.embed_dim
    return float(tokens * (config.n_layers * per_token_layer + embed))
