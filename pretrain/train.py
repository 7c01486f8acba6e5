"""Seeded, resumable (multi-process) CT pretraining.

One call of :func:`pretrain` trains until ``train.epochs`` (or a time / epoch budget), writing
into the run directory: ``last.pt`` (everything needed to continue bit-for-bit), ``best.pt``
(best validation score), ``history.json`` (per-epoch MAE in target units) and ``metrics.json``
(test MAE of the best checkpoint). Under ``torchrun`` each process takes every world-th batch
and DistributedDataParallel (gloo) averages gradients.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ct_plugins.elements import symbol
from ct_plugins.errors import InputError
from ct_plugins.pretrain.batching import (
    Batch,
    SampleLike,
    TargetScaler,
    bucket_batches,
    collate,
    discover_tasks,
    has_target,
    padding_fraction,
    split_by_formula,
    task_target,
)
from ct_plugins.pretrain.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint, write_json_atomic
from ct_plugins.pretrain.model import CrystalTransformer, CTConfig

Augment = Callable[[SampleLike, np.random.Generator], SampleLike]


@dataclass
class TrainConfig:
    targets: tuple[str, ...] = ("ef", "eg")
    weights: tuple[float, ...] = (1.0, 1.0)  # w_i in the loss sum_i w_i * L1_i
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05  # of all optimiser steps, linear from 0
    min_lr_fraction: float = 0.01  # cosine ends at lr * this
    grad_clip: float = 1.0
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    per_source_heads: bool = True  # ef@mp and ef@oqmd: different DFT references, own heads
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        """Values from a --config file are checked like command-line options."""
        problems = [
            *(f"{n} must be >= 1 (got {v})" for n, v in
              (("epochs", self.epochs), ("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size))
              if not (isinstance(v, int) and v >= 1)),
            *(f"{n} must be > 0 (got {v})" for n, v in (("lr", self.lr), ("grad_clip", self.grad_clip))
              if not v > 0),
            *(f"{n} must be in [0, 1) (got {v})" for n, v in
              (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction),
               ("warmup_fraction", self.warmup_fraction)) if not 0 <= v < 1),
        ]
        if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
            problems.append(f"weights must be >= 0 with one > 0 (got {list(self.weights)})")
        if problems:
            raise InputError("pretraining config: " + "; ".join(problems))


@dataclass
class PretrainConfig:
    model: CTConfig = field(default_factory=CTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        train = asdict(self.train)
        train.update(targets=list(self.train.targets), weights=list(self.train.weights))
        return {"model": self.model.to_dict(), "train": train}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PretrainConfig:
        """Build from a (possibly partial) ``{"model": {...}, "train": {...}}`` mapping."""
        model = _dataclass_from(CTConfig, raw.get("model", {}))
        train = _dataclass_from(TrainConfig, raw.get("train", {}))
        unknown = set(raw) - {"model", "train"}
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; use 'model' and 'train'")
        return cls(model, train)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> PretrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _dataclass_from(kind: type, raw: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"unknown {kind.__name__} field(s) {sorted(unknown)}; known: {sorted(names)}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


@dataclass
class Budget:
    """When this invocation stops early (the run stays resumable)."""

    max_minutes: float | None = None
    stop_after_epochs: int | None = None  # epochs to run in this call, e.g. chunked jobs


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), world)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: np.ndarray) -> np.ndarray:
        if self.world == 1:
            return values
        import torch.distributed as dist

        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
        dist.all_reduce(tensor)
        return tensor.numpy()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


# --- metrics ------------------------------------------------------------------------------------
class MaeMeter:
    """Mean absolute error per task, in target units."""

    def __init__(self, scaler: TargetScaler) -> None:
        self.scaler = scaler
        self.abs_sum = np.zeros(len(scaler.tasks))
        self.count = np.zeros(len(scaler.tasks))

    def add(self, prediction: torch.Tensor, batch: Batch) -> None:
        error = (prediction.detach() - batch.targets).abs() * batch.present
        self.abs_sum += error.sum(0).double().numpy() * self.scaler.std
        self.count += batch.present.sum(0).double().numpy()

    def result(self, dist: Distributed | None = None) -> dict[str, float]:
        totals = np.concatenate([self.abs_sum, self.count])
        totals = dist.sum(totals) if dist else totals
        n = len(self.count)
        return {
            t: float(totals[i] / totals[n + i]) for i, t in enumerate(self.scaler.tasks) if totals[n + i]
        }


@torch.no_grad()
def evaluate_mae(predict: Callable[[Batch], torch.Tensor], samples: Sequence[SampleLike],
                 scaler: TargetScaler, per_source_heads: bool, batch_size: int) -> dict[str, float]:
    """MAE per task in target units of ``predict`` over ``samples``, in length-sorted batches."""
    if not samples:
        return {}
    meter = MaeMeter(scaler)
    order = np.argsort([len(s.z) for s in samples], kind="stable")
    for start in range(0, len(order), batch_size):
        batch = collate([samples[i] for i in order[start : start + batch_size]], scaler, per_source_heads)
        meter.add(predict(batch), batch)
    return meter.result()


def masked_l1(prediction: torch.Tensor, batch: Batch, task_weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * mean L1 of task i over the samples that have task i (others masked out)."""
    error = (prediction - batch.targets).abs() * batch.present
    per_task = error.sum(0) / batch.present.sum(0).clamp(min=1)
    return (per_task * task_weights).sum()


def validation_score(mae: dict[str, float], scaler: TargetScaler, weights: dict[str, float]) -> float:
    """Weighted mean of MAE / std over tasks: lower is better, comparable across targets."""
    terms = [
        weights[task_target(t)] * mae[t] / scaler.std[i] for i, t in enumerate(scaler.tasks) if t in mae
    ]
    return float(sum(terms) / len(terms)) if terms else math.inf


# --- the run --------------------------------------------------------------------------------------
@dataclass
class RunState:
    epoch: int = 0  # completed epochs
    best_score: float = math.inf
    best_epoch: int = 0
    seconds: float = 0.0  # training wall time over all invocations
    history: list[dict[str, Any]] = field(default_factory=list)


def warmup_cosine(total_steps: int, warmup_fraction: float, min_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class Trainer:
    def __init__(
        self,
        samples: Sequence[SampleLike],
        config: PretrainConfig,
        out_dir: Path,
        augment: Augment | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.dist = Distributed.from_env()
        self.out_dir = Path(out_dir)
        self.augment = augment
        tc = config.train
        if len(tc.weights) != len(tc.targets):
            raise ValueError(f"{len(tc.targets)} targets but {len(tc.weights)} weights")
        torch.manual_seed(tc.seed)
        # A sample with none of the targets would only cost compute: every loss term masks it.
        samples = [s for s in samples if any(has_target(s, t) for t in tc.targets)]
        splits = split_by_formula(samples, tc.val_fraction, tc.test_fraction, tc.seed)
        self.train_set = [samples[i] for i in splits["train"]]
        self.val_set = [samples[i] for i in splits["val"]]
        self.test_set = [samples[i] for i in splits["test"]]
        if not self.train_set:
            raise ValueError("no training samples after the split")
        tasks = discover_tasks(self.train_set, tc.targets, tc.per_source_heads)
        self.config = replace(config, model=replace(config.model, tasks=tasks))
        self.scaler = TargetScaler.fit(self.train_set, tasks, tc.per_source_heads)
        weight_of = dict(zip(tc.targets, tc.weights))
        self.target_weights = weight_of
        self.task_weights = torch.tensor([weight_of[task_target(t)] for t in tasks], dtype=torch.float32)
        self.model = CrystalTransformer(self.config.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.steps_per_epoch = max(1, math.ceil(len(self.train_set) / tc.batch_size) // self.dist.world)
        schedule = warmup_cosine(tc.epochs * self.steps_per_epoch, tc.warmup_fraction, tc.min_lr_fraction)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.state = RunState()
        self.provenance = {**(provenance or {}), **self._split_provenance(splits)}

    def _split_provenance(self, splits: dict[str, list[int]]) -> dict[str, Any]:
        atoms: Counter[int] = Counter()
        for sample in self.train_set:
            atoms.update(int(z) for z in sample.z)
        return {
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "element_counts": {symbol(z): n for z, n in sorted(atoms.items())},
            "task_counts": {
                t: int(c) for t, c in zip(self.scaler.tasks, self._task_counts(self.train_set))
            },
        }

    def _task_counts(self, samples: Sequence[SampleLike]) -> np.ndarray:
        from ct_plugins.pretrain.batching import sample_task_values

        per_source = self.config.train.per_source_heads
        return sum(sample_task_values(s, self.scaler.tasks, per_source)[1].astype(int) for s in samples)

    # --- checkpoints ------------------------------------------------------------------------------
    def _payload(self, full: bool) -> dict[str, Any]:
        payload = {
            "model": self.model.state_dict(),
            "config": self.config.to_dict(),
            "scaler": self.scaler.to_dict(),
            "provenance": self.provenance,
            "state": asdict(self.state),
        }
        if full:
            payload.update(
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                torch_rng=torch.get_rng_state(),
            )
        return payload

    def resume(self, run_dir: Path) -> None:
        checkpoint = load_checkpoint(Path(run_dir) / LAST)
        changed = config_changes(checkpoint["config"], self.config.to_dict())
        if changed:
            raise InputError(f"{run_dir}: cannot resume, the config differs in {'; '.join(changed)}; "
                             "resume with the same data and config (only --epochs may grow)")
        if checkpoint["scaler"] != self.scaler.to_dict():
            raise InputError(f"{run_dir}: cannot resume, the target normalisation differs: the data changed")
        done = checkpoint["state"]["epoch"]
        if self.config.train.epochs < done:
            raise InputError(f"{run_dir}: the run already completed {done} epochs; "
                             f"--epochs {self.config.train.epochs} would shorten it")
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.state = RunState(**checkpoint["state"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if self.dist.world > 1:  # dropout streams differ per process, reproducibly
            torch.manual_seed(self.config.train.seed * 1000 + self.state.epoch * 10 + self.dist.rank)

    # --- loops ----------------------------------------------------------------------------------
    def run(self, budget: Budget = Budget()) -> dict[str, Any]:
        model = self._wrapped()
        started = time.monotonic()
        tc = self.config.train
        stopped = None
        epochs_this_call = 0
        if self.dist.main:
            self._log(f"train {len(self.train_set)} / val {len(self.val_set)} / test {len(self.test_set)} "
                      f"samples; tasks {', '.join(self.scaler.tasks)}; {self.steps_per_epoch} steps/epoch "
                      f"x {self.dist.world} process(es)")
        while self.state.epoch < tc.epochs:
            stopped = self._budget_exhausted(budget, started, epochs_this_call)
            if stopped:
                break
            epoch_start = time.monotonic()
            train_mae = self._train_epoch(model)
            val_mae = self.evaluate(self.val_set)
            seconds = time.monotonic() - epoch_start
            self._finish_epoch(train_mae, val_mae, seconds)
            epochs_this_call += 1
        metrics = self._final_metrics(stopped)
        self.dist.barrier()
        return metrics

    def _wrapped(self) -> torch.nn.Module:
        if self.dist.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        if self.state.epoch == 0:
            torch.manual_seed(self.config.train.seed * 1000 + self.dist.rank)
        return DistributedDataParallel(self.model)

    def _budget_exhausted(self, budget: Budget, started: float, epochs_done: int) -> str | None:
        if budget.stop_after_epochs is not None and epochs_done >= budget.stop_after_epochs:
            return f"stop_after_epochs={budget.stop_after_epochs}"
        if budget.max_minutes is not None:
            elapsed = time.monotonic() - started
            last = self.state.history[-1]["seconds"] if self.state.history else 0.0
            # Any process over budget stops all of them at the same epoch.
            over = self.dist.sum(np.array([float(elapsed + last > 60 * budget.max_minutes)]))
            if over[0] > 0:
                return f"max_minutes={budget.max_minutes}"
        return None

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        tc = self.config.train
        rng = np.random.default_rng([tc.seed, epoch])
        batches = bucket_batches([len(s.z) for s in self.train_set], tc.batch_size, rng)
        batches = batches[: self.steps_per_epoch * self.dist.world]
        return batches[self.dist.rank :: self.dist.world]

    def _train_epoch(self, model: torch.nn.Module) -> dict[str, float]:
        from tqdm import tqdm

        tc = self.config.train
        epoch = self.state.epoch
        rng = np.random.default_rng([tc.seed, epoch, 1 + self.dist.rank])
        batches = self._epoch_batches(epoch)
        meter = MaeMeter(self.scaler)
        model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not self.dist.main,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        for indices in bar:
            batch = self._collate([self.train_set[i] for i in indices], rng)
            prediction = model(batch.z, batch.coords, batch.has_coords)
            loss = masked_l1(prediction, batch, self.task_weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            meter.add(prediction, batch)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        return meter.result(self.dist)

    def _collate(self, samples: list[SampleLike], rng: np.random.Generator) -> Batch:
        if self.augment is not None:
            samples = [self.augment(s, rng) for s in samples]
        return collate(samples, self.scaler, self.config.train.per_source_heads)

    @torch.no_grad()
    def evaluate(self, samples: Sequence[SampleLike],
                 predict: Callable[[Batch], torch.Tensor] | None = None) -> dict[str, float]:
        """MAE per task in target units (of the model, or of ``predict``); deterministic batches
        sorted by length."""
        self.model.eval()
        predict = predict or (lambda batch: self.model(batch.z, batch.coords, batch.has_coords))
        return evaluate_mae(predict, samples, self.scaler, self.config.train.per_source_heads,
                            self.config.train.eval_batch_size)

    def _finish_epoch(self, train_mae: dict[str, float], val_mae: dict[str, float], seconds: float) -> None:
        self.state.epoch += 1
        self.state.seconds += seconds
        score = validation_score(val_mae, self.scaler, self.target_weights)
        improved = score < self.state.best_score
        if improved:
            self.state.best_score, self.state.best_epoch = score, self.state.epoch
        self.state.history.append({
            "epoch": self.state.epoch, "train_mae": train_mae, "val_mae": val_mae,
            "val_score": score, "lr": self.scheduler.get_last_lr()[0], "seconds": seconds,
        })
        if self.dist.main:
            if improved:
                save_checkpoint(self._payload(full=False), self.out_dir / BEST)
            save_checkpoint(self._payload(full=True), self.out_dir / LAST)
            write_json_atomic(self.state.history, self.out_dir / "history.json")
            self._log(f"epoch {self.state.epoch}: train MAE {_fmt(train_mae)} | val MAE {_fmt(val_mae)}"
                      f" | {seconds:.0f}s{' *best*' if improved else ''}")
        self.dist.barrier()

    def _final_metrics(self, stopped: str | None) -> dict[str, Any]:
        best_path = self.out_dir / BEST
        if best_path.is_file():
            self.model.load_state_dict(load_checkpoint(best_path)["model"])
        test_mae = self.evaluate(self.test_set)
        metrics = {
            "test_mae": test_mae,
            # the baseline every MAE is read against: the training mean (0 in standardised units)
            "mean_predictor_test_mae": self.evaluate(self.test_set, lambda batch: torch.zeros_like(batch.targets)),
            "val_mae_best": self.state.history[self.state.best_epoch - 1]["val_mae"]
            if self.state.best_epoch else {},
            "best_epoch": self.state.best_epoch,
            "completed_epochs": self.state.epoch,
            "planned_epochs": self.config.train.epochs,
            "stopped_early": stopped,
            "train_seconds": self.state.seconds,
            "processes": self.dist.world,
            "threads": torch.get_num_threads(),
            "split_sizes": self.provenance["split_sizes"],
            "padding_fraction_epoch1": padding_fraction(
                [len(s.z) for s in self.train_set],
                bucket_batches([len(s.z) for s in self.train_set], self.config.train.batch_size,
                               np.random.default_rng([self.config.train.seed, 0])),
            ),
        }
        if self.dist.main:
            write_json_atomic(metrics, self.out_dir / "metrics.json")
            self._log(f"test MAE (best epoch {self.state.best_epoch}): {_fmt(test_mae)}"
                      + (f"; stopped early: {stopped}" if stopped else ""))
            if best_path.is_file():  # export needs the final metrics beside the best weights
                best = load_checkpoint(best_path)
                best["metrics"] = metrics
                save_checkpoint(best, best_path)
        return metrics

    @staticmethod
    def _log(text: str) -> None:
        print(text, flush=True)


def config_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"train.lr: 0.001 -> 0.01"`` for every field that differs, except ``train.epochs``:
    a finished run may be extended (the cosine schedule then stretches to the new length)."""
    flat_saved, flat_now = _flatten(saved), _flatten(now)
    keys = sorted((set(flat_saved) | set(flat_now)) - {"train.epochs"})
    return [f"{k}: {flat_saved.get(k)} -> {flat_now.get(k)}" for k in keys
            if flat_saved.get(k) != flat_now.get(k)]


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _fmt(mae: dict[str, float]) -> str:
    return " ".join(f"{t}={v:.4f}" for t, v in mae.items()) or "-"


def pretrain(
    samples: Sequence[SampleLike],
    config: PretrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    budget: Budget = Budget(),
    augment: Augment | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue, with ``resume``) a CT run in ``out_dir``; returns the test metrics."""
    trainer = Trainer(samples, config, Path(out_dir), augment, provenance)
    if resume:
        trainer.resume(Path(out_dir))
    elif (Path(out_dir) / LAST).exists():
        raise FileExistsError(f"{out_dir} already holds a run; pass --resume to continue it")
    return trainer.run(budget)
