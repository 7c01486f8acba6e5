"""Torch modules the adapters put into upstream models (imported only when a model is built)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TableRows(nn.Module):
    """``codes (N, n_elements) -> weight[argmax(codes)]``: an embedding lookup whose rows start
    as the table and are trained.

    The upstream data pipelines only carry per-atom feature vectors, so in trainable mode they
    carry one-hot element codes; argmax still finds the element after an affine standardisation
    (which some upstream loaders apply).
    """

    def __init__(self, init: np.ndarray) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(np.array(init), dtype=torch.float32))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.weight[codes.argmax(dim=-1)]


def with_trainable_rows(first_layer: nn.Module, rows: np.ndarray) -> nn.Sequential:
    """``TableRows`` followed by the upstream's own first layer (built for the table dimension)."""
    return nn.Sequential(TableRows(rows), first_layer)
