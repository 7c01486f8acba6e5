"""Seeded, resumable (multi-process) CT pretraining.

One call of :func:`pretrain` trains until ``train.epochs`` (or a time / epoch budget), writing
into the run directory: ``last.pt`` (everything needed to continue bit-for-bit), ``best.pt``
(best validation score), ``history.json`` (per-epoch MAE in target units) and ``metrics.json``
(test MAE of the best checkpoint); a binary target (``metal``) is reported as accuracy and BCE
(``*_accuracy``, ``*_bce``) beside them. Under ``torchrun`` each process takes every world-th
batch and DistributedDataParallel (gloo) averages gradients.
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
    sample_task_values,
    split_by_formula,
    task_target,
)
from ct_plugins.pretrain.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint, write_json_atomic
from ct_plugins.pretrain.model import CrystalTransformer, CTConfig
from ct_plugins.pretrain.targets import DERIVED_FROM, METAL, METAL_GAP_EV, is_binary

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
        if not self.targets or len(set(self.targets)) != len(self.targets):
            problems.append(f"targets must be distinct and at least one (got {list(self.targets)})")
        if len(self.weights) != len(self.targets):
            problems.append(f"{len(self.targets)} targets {list(self.targets)} but {len(self.weights)} weights")
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
    """Mean absolute error per regression task, in target units (binary tasks have no MAE)."""

    def __init__(self, scaler: TargetScaler) -> None:
        self.scaler = scaler
        self.regression = torch.tensor([not is_binary(t) for t in scaler.tasks], dtype=torch.bool)
        self.abs_sum = np.zeros(len(scaler.tasks))
        self.count = np.zeros(len(scaler.tasks))

    def add(self, prediction: torch.Tensor, batch: Batch) -> None:
        present = batch.present & self.regression
        error = (prediction.detach() - batch.targets).abs() * present
        self.abs_sum += error.sum(0).double().numpy() * self.scaler.std
        self.count += present.sum(0).double().numpy()

    def result(self, dist: Distributed | None = None) -> dict[str, float]:
        totals = np.concatenate([self.abs_sum, self.count])
        totals = dist.sum(totals) if dist else totals
        n = len(self.count)
        return {
            t: float(totals[i] / totals[n + i]) for i, t in enumerate(self.scaler.tasks) if totals[n + i]
        }


class BinaryMeter:
    """Accuracy (logit > 0 means class 1, e.g. metal) and mean BCE per binary task."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.binary = torch.tensor([is_binary(t) for t in tasks], dtype=torch.bool)
        self.correct = np.zeros(len(tasks))
        self.bce_sum = np.zeros(len(tasks))
        self.count = np.zeros(len(tasks))

    def add(self, prediction: torch.Tensor, batch: Batch) -> None:
        present = batch.present & self.binary
        logits = prediction.detach()
        right = ((logits > 0).to(batch.targets.dtype) == batch.targets) & present
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
        self.correct += right.sum(0).double().numpy()
        self.bce_sum += (bce * present).sum(0).double().numpy()
        self.count += present.sum(0).double().numpy()

    def result(self, dist: Distributed | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """(accuracy, mean BCE) per binary task that had samples."""
        totals = np.concatenate([self.correct, self.bce_sum, self.count])
        totals = dist.sum(totals) if dist else totals
        correct, bce, count = np.split(totals, 3)
        seen = [(i, t) for i, t in enumerate(self.tasks) if count[i]]
        return ({t: float(correct[i] / count[i]) for i, t in seen}, {t: float(bce[i] / count[i]) for i, t in seen})


@dataclass
class TaskScores:
    """One pass over a split: MAE (target units) of the regression tasks and, when the run has
    binary tasks, their accuracy and mean BCE (None without binary tasks)."""

    mae: dict[str, float]
    accuracy: dict[str, float] | None = None
    bce: dict[str, float] | None = None

    def fields(self, prefix: str) -> dict[str, dict[str, float]]:
        """``{prefix}_mae`` (and ``_accuracy``, ``_bce``) entries for history and metrics: a run
        without binary tasks writes exactly the keys it always wrote."""
        found = {"mae": self.mae, "accuracy": self.accuracy, "bce": self.bce}
        return {f"{prefix}_{name}": value for name, value in found.items() if value is not None}


class TaskMeter:
    """MAE of the regression tasks and accuracy / BCE of the binary ones, in one pass."""

    def __init__(self, scaler: TargetScaler) -> None:
        self.mae = MaeMeter(scaler)
        self.binary = BinaryMeter(scaler.tasks) if any(is_binary(t) for t in scaler.tasks) else None

    def add(self, prediction: torch.Tensor, batch: Batch) -> None:
        self.mae.add(prediction, batch)
        if self.binary is not None:
            self.binary.add(prediction, batch)

    def result(self, dist: Distributed | None = None) -> TaskScores:
        if self.binary is None:
            return TaskScores(self.mae.result(dist))
        return TaskScores(self.mae.result(dist), *self.binary.result(dist))


@torch.no_grad()
def evaluate_tasks(predict: Callable[[Batch], torch.Tensor], samples: Sequence[SampleLike],
                   scaler: TargetScaler, per_source_heads: bool, batch_size: int) -> TaskScores:
    """Scores per task of ``predict`` over ``samples``, in length-sorted batches."""
    meter = TaskMeter(scaler)
    order = np.argsort([len(s.z) for s in samples], kind="stable")
    for start in range(0, len(order), batch_size):
        batch = collate([samples[i] for i in order[start : start + batch_size]], scaler, per_source_heads)
        meter.add(predict(batch), batch)
    return meter.result()


def evaluate_mae(predict: Callable[[Batch], torch.Tensor], samples: Sequence[SampleLike],
                 scaler: TargetScaler, per_source_heads: bool, batch_size: int) -> dict[str, float]:
    """MAE per regression task in target units of ``predict`` over ``samples``."""
    return evaluate_tasks(predict, samples, scaler, per_source_heads, batch_size).mae


def masked_l1(prediction: torch.Tensor, batch: Batch, task_weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * mean L1 of task i over the samples that have task i (others masked out)."""
    error = (prediction - batch.targets).abs() * batch.present
    per_task = error.sum(0) / batch.present.sum(0).clamp(min=1)
    return (per_task * task_weights).sum()


def masked_loss(prediction: torch.Tensor, batch: Batch, task_weights: torch.Tensor,
                binary: torch.Tensor) -> torch.Tensor:
    """sum_i w_i * mean loss of task i over the samples that have task i: L1 on standardised
    targets, BCE with logits where ``binary`` (a (T,) bool mask, e.g. the metal heads)."""
    if not binary.any():  # no binary task: the very same arithmetic as masked_l1 (v1/v2 runs)
        return masked_l1(prediction, batch, task_weights)
    l1 = (prediction - batch.targets).abs()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(prediction, batch.targets, reduction="none")
    error = torch.where(binary, bce, l1) * batch.present
    per_task = error.sum(0) / batch.present.sum(0).clamp(min=1)
    return (per_task * task_weights).sum()


def validation_score(mae: dict[str, float], scaler: TargetScaler, weights: dict[str, float],
                     bce: dict[str, float] | None = None) -> float:
    """Weighted mean of MAE / std over the regression tasks: lower is better, comparable across
    targets. Binary tasks (metal) stay out, so best.pt is chosen by the same rule with or without
    the metal term and an ablation compares like with like; only a run with no regression task
    at all is scored by its weighted mean validation BCE."""
    terms = [
        weights[task_target(t)] * mae[t] / scaler.std[i] for i, t in enumerate(scaler.tasks) if t in mae
    ]
    if not terms and bce:
        terms = [weights[task_target(t)] * value for t, value in bce.items()]
    return float(sum(terms) / len(terms)) if terms else math.inf


def unlabelled_targets(samples: Sequence[SampleLike], targets: Sequence[str]) -> list[str]:
    """Why each target that no sample has is missing, one clause per target (empty: all present)."""
    problems = []
    for target in targets:
        if any(has_target(s, target) for s in samples):
            continue
        if target in DERIVED_FROM:
            problems.append(f"target {target!r} is derived from {DERIVED_FROM[target]} labels "
                            f"({target} when {DERIVED_FROM[target]} <= {METAL_GAP_EV} eV) and no sample has one: "
                            f"use data with band gaps (mp_compositions, mp_structures, oqmd, cmr) or drop {target}")
        else:
            problems.append(f"no sample has target {target!r}: the built-in corpora label ef and eg "
                            f"({METAL} is derived from eg); a .csv/.jsonl corpus file may add its own columns")
    return problems


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
        problems = unlabelled_targets(samples, tc.targets)
        if problems:
            raise InputError("; ".join(problems))
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
        self.binary_tasks = torch.tensor([is_binary(t) for t in tasks], dtype=torch.bool)
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
        provenance = {
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "element_counts": {symbol(z): n for z, n in sorted(atoms.items())},
            "task_counts": {
                t: int(c) for t, c in zip(self.scaler.tasks, self._task_counts(self.train_set))
            },
        }
        if METAL in self.config.train.targets:  # the label's definition travels with the table
            provenance["metal_gap_ev"] = METAL_GAP_EV
        return provenance

    def _task_counts(self, samples: Sequence[SampleLike]) -> np.ndarray:
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
        changed = config_changes(with_defaults(checkpoint["config"]), self.config.to_dict())
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
            train_scores = self._train_epoch(model)
            val_scores = self.evaluate(self.val_set)
            seconds = time.monotonic() - epoch_start
            self._finish_epoch(train_scores, val_scores, seconds)
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

    def _train_epoch(self, model: torch.nn.Module) -> TaskScores:
        from tqdm import tqdm

        tc = self.config.train
        epoch = self.state.epoch
        rng = np.random.default_rng([tc.seed, epoch, 1 + self.dist.rank])
        batches = self._epoch_batches(epoch)
        meter = TaskMeter(self.scaler)
        model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not self.dist.main,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
        for indices in bar:
            batch = self._collate([self.train_set[i] for i in indices], rng)
            prediction = model(batch.z, batch.coords, batch.has_coords)
            loss = masked_loss(prediction, batch, self.task_weights, self.binary_tasks)
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
                 predict: Callable[[Batch], torch.Tensor] | None = None) -> TaskScores:
        """MAE per task in target units, accuracy and BCE per binary task (of the model, or of
        ``predict``); deterministic batches sorted by length."""
        self.model.eval()
        predict = predict or (lambda batch: self.model(batch.z, batch.coords, batch.has_coords))
        return evaluate_tasks(predict, samples, self.scaler, self.config.train.per_source_heads,
                              self.config.train.eval_batch_size)

    def _finish_epoch(self, train: TaskScores, val: TaskScores, seconds: float) -> None:
        self.state.epoch += 1
        self.state.seconds += seconds
        score = validation_score(val.mae, self.scaler, self.target_weights, val.bce)
        improved = score < self.state.best_score
        if improved:
            self.state.best_score, self.state.best_epoch = score, self.state.epoch
        self.state.history.append({
            "epoch": self.state.epoch, **train.fields("train"), **val.fields("val"),
            "val_score": score, "lr": self.scheduler.get_last_lr()[0], "seconds": seconds,
        })
        if self.dist.main:
            if improved:
                save_checkpoint(self._payload(full=False), self.out_dir / BEST)
            save_checkpoint(self._payload(full=True), self.out_dir / LAST)
            write_json_atomic(self.state.history, self.out_dir / "history.json")
            self._log(f"epoch {self.state.epoch}: train MAE {_fmt(train.mae)} | val MAE {_fmt(val.mae)}"
                      + (f" | val accuracy {_fmt(val.accuracy)}" if val.accuracy is not None else "")
                      + f" | {seconds:.0f}s{' *best*' if improved else ''}")
        self.dist.barrier()

    def _training_mean_predictor(self) -> Callable[[Batch], torch.Tensor]:
        """The baseline: every task's training mean, 0 in standardised units for a regression
        task and, for a binary one, the logit of its training share of class 1 (the majority
        class is predicted)."""
        mean = torch.zeros(len(self.scaler.tasks))
        if self.binary_tasks.any():
            per_source = self.config.train.per_source_heads
            pairs = [sample_task_values(s, self.scaler.tasks, per_source) for s in self.train_set]
            share = sum(v for v, _ in pairs) / np.maximum(sum(p for _, p in pairs), 1)
            share = np.clip(share, 1e-6, 1 - 1e-6)
            logits = torch.as_tensor(np.log(share / (1 - share)), dtype=torch.float32)
            mean = torch.where(self.binary_tasks, logits, mean)
        return lambda batch: mean.expand_as(batch.targets)

    def _final_metrics(self, stopped: str | None) -> dict[str, Any]:
        best_path = self.out_dir / BEST
        if best_path.is_file():
            self.model.load_state_dict(load_checkpoint(best_path)["model"])
        test = self.evaluate(self.test_set)
        best_row = self.state.history[self.state.best_epoch - 1] if self.state.best_epoch else {}
        metrics = {
            **test.fields("test"),
            # the baseline every score is read against: the training mean (majority class for metal)
            **self.evaluate(self.test_set, self._training_mean_predictor()).fields("mean_predictor_test"),
            **{f"{key}_best": best_row.get(key, {}) for key in test.fields("val")},
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
            self._log(f"test MAE (best epoch {self.state.best_epoch}): {_fmt(test.mae)}"
                      + (f"; test accuracy {_fmt(test.accuracy)}" if test.accuracy is not None else "")
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


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the fields added since it was written at their defaults, which keep
    the old behaviour (``model.head_layers`` = 1): older runs stay resumable."""
    try:
        return PretrainConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):  # not a config this version can read: compare it as it is
        return saved


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
