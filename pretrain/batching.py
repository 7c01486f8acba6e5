"""From samples to padded tensors: tasks, target scaling, formula splits and length bucketing.

A *task* is one prediction head. With ``per_source_heads`` the same target from different data
sets gets its own head and its own standardisation (``ef@mp`` vs ``ef@oqmd``): their DFT
references differ, so one head would have to learn the offset between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ct_plugins.pretrain.model import PAD_Z
from ct_plugins.pretrain.targets import is_binary, target_label


class SampleLike(Protocol):
    """The fields of ``ct_plugins.pretrain.samples.Sample`` used here."""

    id: str
    source: str
    formula: str
    z: np.ndarray
    coords: np.ndarray | None
    targets: dict[str, float]


def task_name(target: str, source: str, per_source_heads: bool) -> str:
    return f"{target}@{source}" if per_source_heads else target


def task_target(task: str) -> str:
    return task.split("@", 1)[0]


def discover_tasks(
    samples: Sequence[SampleLike], targets: Sequence[str], per_source_heads: bool
) -> tuple[str, ...]:
    """Every task that has at least one labelled sample, sorted."""
    found = {
        task_name(t, s.source, per_source_heads)
        for s in samples
        for t in targets
        if has_target(s, t)
    }
    return tuple(sorted(found))


def has_target(sample: SampleLike, target: str) -> bool:
    return target_label(sample.targets, target) is not None


def sample_task_values(
    sample: SampleLike, tasks: Sequence[str], per_source_heads: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) over ``tasks`` for one sample; absent values are 0 and masked."""
    values = np.zeros(len(tasks), dtype=np.float64)
    present = np.zeros(len(tasks), dtype=bool)
    for i, task in enumerate(tasks):
        target = task_target(task)
        if task_name(target, sample.source, per_source_heads) != task:
            continue
        value = target_label(sample.targets, target)
        if value is not None:
            values[i], present[i] = value, True
    return values, present


@dataclass
class TargetScaler:
    """Per-task mean and std of the training split (targets are learnt standardised).

    Binary tasks (``metal``) get mean 0 and std 1: their 0/1 labels are the targets of a logit,
    standardising them would turn BCE's targets into other numbers."""

    tasks: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, samples: Sequence[SampleLike], tasks: Sequence[str], per_source_heads: bool) -> TargetScaler:
        pairs = [sample_task_values(s, tasks, per_source_heads) for s in samples]
        values = np.stack([v for v, _ in pairs])
        present = np.stack([p for _, p in pairs])
        counts = present.sum(0)
        if (counts == 0).any():
            missing = [t for t, c in zip(tasks, counts) if c == 0]
            raise ValueError(f"no training samples for task(s) {missing}")
        mean = (values * present).sum(0) / counts
        var = (((values - mean) * present) ** 2).sum(0) / counts
        std = np.sqrt(np.maximum(var, 1e-12))
        binary = np.array([is_binary(t) for t in tasks], dtype=bool)
        return cls(tuple(tasks), np.where(binary, 0.0, mean), np.where(binary, 1.0, std))

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TargetScaler:
        return cls(tuple(raw["tasks"]), np.asarray(raw["mean"]), np.asarray(raw["std"]))


@dataclass
class Batch:
    z: torch.Tensor  # (B, L) int64, PAD_Z where padded
    coords: torch.Tensor  # (B, L, 3) float32, zeros where absent
    has_coords: torch.Tensor  # (B,) bool
    targets: torch.Tensor  # (B, T) standardised, 0 where absent
    present: torch.Tensor  # (B, T) bool

    @property
    def size(self) -> int:
        return int(self.z.shape[0])


def collate(
    samples: Sequence[SampleLike], scaler: TargetScaler, per_source_heads: bool
) -> Batch:
    length = max(len(s.z) for s in samples)
    z = np.full((len(samples), length), PAD_Z, dtype=np.int64)
    coords = np.zeros((len(samples), length, 3), dtype=np.float32)
    has_coords = np.zeros(len(samples), dtype=bool)
    targets = np.zeros((len(samples), len(scaler.tasks)), dtype=np.float32)
    present = np.zeros_like(targets, dtype=bool)
    for i, sample in enumerate(samples):
        n = len(sample.z)
        z[i, :n] = sample.z
        if sample.coords is not None:
            coords[i, :n] = sample.coords
            has_coords[i] = True
        values, mask = sample_task_values(sample, scaler.tasks, per_source_heads)
        targets[i] = np.where(mask, (values - scaler.mean) / scaler.std, 0.0)
        present[i] = mask
    return Batch(*(torch.from_numpy(a) for a in (z, coords, has_coords, targets, present)))


def bucket_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of similar length, in random order.

    Sorting by token count (random order among equal lengths) then cutting into batches keeps
    padding near zero (measured 0.7% vs 78% for random batches on MP formulas).
    """
    lengths = np.asarray(lengths)
    order = np.lexsort((rng.permutation(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def padding_fraction(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> float:
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    return 1.0 - real / padded if padded else 0.0


def split_by_formula(
    samples: Sequence[SampleLike], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Sample indices of train/val/test; all samples of one formula land in the same split."""
    formulas = sorted({s.formula for s in samples})
    order = np.random.default_rng(seed).permutation(len(formulas))
    n_test = int(round(test_fraction * len(formulas)))
    n_val = int(round(val_fraction * len(formulas)))
    part = {}
    for rank, index in enumerate(order):
        part[formulas[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, sample in enumerate(samples):
        splits[part[sample.formula]].append(i)
    return splits
