"""Shared helpers for the adapter tests: small real data subsets and a quick CLI-free train call."""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path

import torch

from ct_plugins.adapter import Adapter, TrainJob, TrainResult

DATA = Path(__file__).resolve().parent / "data"
OQMD = DATA / "oqmd_perovskites_sample.jsonl.gz"
TARGET = "formation_energy_per_atom"
METRIC_KEYS = {"test_mae", "val_mae", "epochs", "n_train", "n_test", "atom_features", "mode",
               "seed", "wall_s"}


def oqmd_records(n: int = 50) -> list[dict]:
    with gzip.open(OQMD, "rt") as handle:
        return [json.loads(line) for _, line in zip(range(n), handle)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def subset(tmp_path: Path, n: int = 50) -> Path:
    """The first ``n`` real OQMD perovskites as a .jsonl file."""
    return write_jsonl(tmp_path / f"oqmd{n}.jsonl", oqmd_records(n))


def train_config(upstream: str, data: Path, out: Path, **overrides):
    from ct_plugins.training import UpstreamTrainConfig

    torch.set_num_threads(1)
    settings = dict(upstream=upstream, data=str(data), target=TARGET, atom_features="cgcnn92",
                    mode="frozen", epochs=1, seed=0, out=str(out), batch_size=16, small=True)
    settings.update(overrides)
    return UpstreamTrainConfig(**settings)


def train_on_subset(upstream: str, tmp_path: Path, n: int = 50, **overrides) -> dict:
    """``ct train`` on ``n`` real perovskites; checks the metrics every run must report."""
    import math

    from ct_plugins import training

    metrics = training.run(train_config(upstream, subset(tmp_path, n), tmp_path / "out", **overrides))
    assert METRIC_KEYS <= set(metrics)
    assert math.isfinite(metrics["test_mae"]) and math.isfinite(metrics["val_mae"])
    return metrics



class ScriptedAdapter(Adapter):
    """Test double for the early-stopping contract: reports a scripted validation MAE per epoch
    and stops when the job asks (a real adapter does this inside its upstream's loop)."""

    name = "scripted"
    upstream = "numpy"  # installed everywhere: the version check passes
    supported = ">=1"

    def __init__(self, val_maes: list[float], early_stopping: bool = True) -> None:
        self.val_maes = val_maes
        self.supports_early_stopping = early_stopping  # type: ignore[misc]

    def install(self, table, mode, missing):
        return contextlib.nullcontext()

    def train(self, job: TrainJob) -> TrainResult:
        trained = 0
        for epoch, val in enumerate(self.val_maes[: job.epochs], 1):
            job.report_epoch(epoch, val, val)
            trained = epoch
            if job.should_stop():
                break
        best = min(self.val_maes[:trained])
        return TrainResult(best, best, {"model_epoch": self.val_maes.index(best) + 1})


def manager_with(*extra: Adapter):
    """The installed plugins plus ``extra`` adapters."""
    from ct_plugins.hookspecs import hookimpl
    from ct_plugins.plugins import build_plugin_manager

    class Plugin:
        @hookimpl
        def register_adapters(self):
            return list(extra)

    manager = build_plugin_manager()
    manager.register(Plugin())
    return manager
