"""``ct train NAME``: any registered adapter trains its upstream on real data with a table."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pluggy

from ct_plugins.adapter import EpochScores, Mode, TrainJob, TrainResult
from ct_plugins.cache import default_cache_dir, index_path
from ct_plugins.elements import atomic_number
from ct_plugins.errors import InputError, TrainingFailed
from ct_plugins.files import atomic_write_bytes, check_output_folder, fresh_output_folder
from ct_plugins.node_features import NodeFeatureProvider, resolve_node_features
from ct_plugins.plugins import get_adapter
from ct_plugins.provenance import code_provenance, data_sha256
from ct_plugins.records import (
    DataError, Record, check_coverage, filled_elements, load_records, split_records,
)
from ct_plugins.registry import load_table
from ct_plugins.table_spec import parse_table_spec
from ct_plugins.tables import Missing

UPSTREAM_DEFAULT = "default"  # --atom-features default: the upstream's own features, no patch


@dataclass
class UpstreamTrainConfig:
    """One ``ct train`` run: which adapter, data, table spec and training settings."""

    upstream: str  # adapter name
    data: str
    target: str
    atom_features: str = "ct"  # table spec NAME[:MODIFIER][:MODE], provider spec PROVIDER:SOURCE, or "default"
    mode: Mode | None = None  # None: the spec's mode, else frozen
    epochs: int = 30  # with patience: the most epochs
    patience: int | None = None  # stop once val MAE has not improved for this many epochs
    seed: int = 0
    out: str = "ct_train_out"
    split_file: str | None = None
    batch_size: int = 32
    lr: float | None = None  # None: the upstream trainer's own default
    missing: Missing = "error"
    max_abs_target: float | None = None  # drop (and count) outliers beyond this
    threads: int = 1
    small: bool = False  # tiny model sizes, for tests and smoke runs
    overwrite: bool = False  # clear a non-empty --out (a previous run) instead of failing
    cache: bool = True  # reuse parsed/converted data of earlier runs on the same bytes (ct_plugins.cache)


@contextlib.contextmanager
def subnormal_floats_flushed() -> Iterator[None]:
    """Treat subnormal floats as zero in this thread's CPU arithmetic, restored on exit.

    Why: ~5% of CGCNN's Gaussian-expanded edge features are subnormal (exp(-(d-mu)^2/s^2) far from
    a centre), and x86 matmuls on them run ~10x slower: CGCNN's backward pass took 7x longer.
    Their products vanish in float32 sums anyway: CGCNN, MEGNet and ALIGNN runs on tests/data
    gave bit-identical MAEs with and without, so cached runs stay comparable. Restored because
    the thread's mode outlives the call (hypothesis, run later in the same pytest process,
    refuses to work without subnormals).
    """
    import torch

    was_on = float(torch.tensor([1e-40]) * 1.0) == 0.0  # torch has no getter for the mode
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def run(
    cfg: UpstreamTrainConfig,
    on_epoch: Callable[[EpochScores], None] | None = None,
    manager: pluggy.PluginManager | None = None,
) -> dict:
    """Load, split, train with the adapter inside its patch, write ``metrics.json``."""
    with subnormal_floats_flushed():
        return _run(cfg, on_epoch, manager)


def _run(
    cfg: UpstreamTrainConfig,
    on_epoch: Callable[[EpochScores], None] | None = None,
    manager: pluggy.PluginManager | None = None,
) -> dict:
    import torch

    adapter = get_adapter(cfg.upstream, manager)
    adapter.require()
    check_patience(cfg, adapter)
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    code = code_provenance()  # taken now: the tree may change while a long run trains
    out = Path(cfg.out).resolve()  # upstream trainers chdir into it; relative paths would break
    check_output_folder(out, cfg.overwrite)  # before any work; cleared only once the data loaded
    table, provider, mode = _features_and_mode(cfg, manager)
    if provider is not None:
        adapter.check_node_features(provider)
    data = load_run_data(cfg, table, provider)
    fresh_output_folder(out, cfg.overwrite)
    prepared = time.perf_counter()
    log = EpochLog(EarlyStopping(cfg.patience), on_epoch)
    job = TrainJob(data.splits, table, mode, cfg.missing, cfg.epochs, cfg.seed, cfg.batch_size, cfg.lr,
                   cfg.small, out, log.record, node_features=provider, data_sha256=data.sha256,
                   cache_dir=data.cache_dir, should_stop=log.stopping.should_stop, patience=cfg.patience)
    result = require_finite(adapter.train(job))
    trained = time.perf_counter()
    metrics = {
        "upstream": cfg.upstream,
        "upstream_version": adapter.installed_version(),
        **code,  # commit and dirty flag of the code that trained
        "data_sha256": data.sha256,  # a cached result is reused only for the same records
        "val_mae": result.val_mae,
        "test_mae": result.test_mae,
        **result.details,
        "history": [asdict(h) for h in log.history],
        "epochs": cfg.epochs,
        "patience": cfg.patience,
        **log.stopping.summary(cfg.epochs),
        **data.counts(),
        "atom_features": cfg.atom_features,
        **_feature_identity(table, provider),
        "mode": mode,
        "seed": cfg.seed,
        "wall_s": round(time.perf_counter() - started, 2),
        # where the wall time went: reading/validating data (incl. table loading) vs the adapter
        # (its own breakdown, e.g. dataset writing / upstream trainer / evaluation, in timings_s)
        "timings_s": {"prepare": round(prepared - started, 2), "adapter": round(trained - prepared, 2),
                      **result.details.get("timings_s", {})},
        "config": asdict(cfg),
    }
    atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    return metrics


@dataclass
class RunData:
    """A run's records, checked against its features and split; what was left out, counted."""

    sha256: str | None  # None: the file is unreadable (load_records has said why)
    cache_dir: Path | None
    splits: dict[str, list[Record]]
    skipped_unlabelled: int
    dropped_outliers: list[str]
    filled_elements: dict  # element -> atoms given a --missing mean/zero row

    def counts(self) -> dict:
        return {**{f"n_{part}": len(self.splits[part]) for part in ("train", "val", "test")},
                "skipped_unlabelled": self.skipped_unlabelled, "dropped_outliers": self.dropped_outliers,
                "filled_elements": self.filled_elements}


def load_run_data(cfg: UpstreamTrainConfig, table, provider: NodeFeatureProvider | None) -> RunData:
    """Read (through the conversion cache when it holds these bytes), check coverage, split."""
    data_sha = readable_sha256(cfg.data)  # None: load_records names what is wrong with the file
    cache_dir = default_cache_dir() if cfg.cache and data_sha else None
    index = index_path(cache_dir, data_sha, cfg.target) if cache_dir and data_sha else None
    loaded = load_records(cfg.data, cfg.target, index)
    records, outliers = drop_outliers(loaded.records, cfg.max_abs_target)
    if table is not None:
        check_coverage(records, table, cfg.missing)
    if provider is not None:
        check_provider_coverage(records, provider)
    filled = filled_elements(records, table, cfg.missing) if table is not None else {}
    return RunData(data_sha, cache_dir, split_records(records, cfg.seed, cfg.split_file),
                   len(loaded.skipped_unlabelled), outliers, filled)


def readable_sha256(path: str) -> str | None:
    """sha256 of the data, or None when it is missing or unreadable (truncated gzip ...)."""
    import zlib

    try:
        return data_sha256(path) if Path(path).exists() else None
    except (OSError, EOFError, zlib.error):
        return None


@dataclass
class EarlyStopping:
    """Tracks validation MAE per epoch; asks to stop after ``patience`` epochs without a new best."""

    patience: int | None
    best_val: float = math.inf
    best_epoch: int | None = None
    last_epoch: int = 0

    def update(self, scores: EpochScores) -> None:
        self.last_epoch = scores.epoch
        if scores.val_mae is not None and scores.val_mae < self.best_val:  # NaN never improves
            self.best_val, self.best_epoch = scores.val_mae, scores.epoch

    def summary(self, max_epochs: int) -> dict:
        return {"stopped_epoch": self.last_epoch,  # epochs trained (< max_epochs: stopped early)
                "stopped_early": self.last_epoch < max_epochs,
                "best_epoch": self.best_epoch}  # of the lowest validation MAE in the history

    def should_stop(self) -> bool:
        if self.patience is None:
            return False
        since = self.last_epoch - (self.best_epoch or 0)  # no finite val MAE yet: from epoch 0
        return since >= self.patience


@dataclass
class EpochLog:
    """What the adapter reports per epoch: kept, fed to early stopping, passed on to the caller."""

    stopping: EarlyStopping
    on_epoch: Callable[[EpochScores], None] | None = None
    history: list[EpochScores] = field(default_factory=list)

    def record(self, scores: EpochScores) -> None:
        self.history.append(scores)
        self.stopping.update(scores)
        if self.on_epoch is not None:
            self.on_epoch(scores)


def check_patience(cfg: UpstreamTrainConfig, adapter) -> None:
    """Early stopping needs an adapter that can end its upstream's loop; refuse before any work."""
    if cfg.patience is None:
        return
    if cfg.patience < 1:
        raise InputError(f"--patience must be at least 1, not {cfg.patience}")
    if not adapter.supports_early_stopping:
        raise InputError(f"--patience: the {adapter.name} adapter cannot stop its upstream "
                         "trainer early; train a fixed number of --epochs instead")


def require_finite(result: TrainResult) -> TrainResult:
    """A run whose model scores NaN did not train (diverged); never report it as a result."""
    bad = [k for k in ("val_mae", "test_mae") if not math.isfinite(getattr(result, k))]
    if bad:
        raise TrainingFailed(f"training diverged: {' and '.join(bad)} not finite; "
                             "lower --lr or check the targets")
    return result


def _features_and_mode(cfg: UpstreamTrainConfig, manager):
    """(table, provider, mode): at most one of table and provider; neither for "default"."""
    if cfg.atom_features == UPSTREAM_DEFAULT:
        return None, None, cfg.mode or "frozen"
    provider = resolve_node_features(cfg.atom_features, cfg.missing, cfg.mode, manager)
    if provider is not None:
        return None, provider, "frozen"
    spec = parse_table_spec(cfg.atom_features).with_mode(cfg.mode)
    return load_table(spec, manager), None, spec.mode or "frozen"


def _feature_identity(table, provider: NodeFeatureProvider | None) -> dict:
    """What the node features were, for metrics.json and the benchmarks' cache check."""
    if provider is not None:
        return {"table": provider.name, "table_dim": provider.dim, "table_sha256": provider.sha256,
                "node_features": dict(provider.provenance)}
    return {"table": table.name if table else UPSTREAM_DEFAULT, "table_dim": table.dim if table else None,
            "table_sha256": table.sha256() if table else None}


def check_provider_coverage(records: list[Record], provider: NodeFeatureProvider) -> None:
    """Fail before training on the first record with an element the provider has no input for."""
    if provider.elements is None:
        return
    known = set(provider.elements)
    for record in records:
        absent = sorted(record.elements - known, key=atomic_number)
        if absent:
            raise DataError(f"record {record.id}: element(s) {', '.join(absent)} have no trained "
                            f"input in {provider.name!r}; use --missing mean|zero")


def drop_outliers(records: list[Record], limit: float | None) -> tuple[list[Record], list[str]]:
    """Records with |target| <= limit, and the ids of those dropped (reported, never silent)."""
    if limit is None:
        return records, []
    kept = [r for r in records if abs(r.target) <= limit]
    dropped = [r.id for r in records if abs(r.target) > limit]
    if dropped:
        print(f"ct train: dropped {len(dropped)} record(s) with |target| > {limit}: "
              f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''}")
    return kept, dropped


def print_epoch(epochs: int, prefix: str = "") -> Callable[[EpochScores], None]:
    """A progress line per epoch, printed as the upstream trains (``prefix`` names the run)."""

    def show(scores: EpochScores) -> None:
        train = "-" if scores.train_mae is None else f"{scores.train_mae:.4f}"
        val = "-" if scores.val_mae is None else f"{scores.val_mae:.4f}"
        print(f"  {prefix}epoch {scores.epoch:3d}/{epochs}  train MAE {train}  val MAE {val}", flush=True)

    return show


def summary_line(metrics: dict) -> str:
    epochs = f"{metrics['epochs']} epochs"
    if metrics.get("patience") is not None:
        epochs = (f"{metrics['stopped_epoch']} of at most {metrics['epochs']} epochs (patience "
                  f"{metrics['patience']}, best epoch {metrics['best_epoch']})")
    return (
        f"{metrics['upstream']} {metrics['atom_features']} ({metrics['mode']}), seed "
        f"{metrics['seed']}, {epochs}, train/val/test {metrics['n_train']}/"
        f"{metrics['n_val']}/{metrics['n_test']}: val MAE {metrics['val_mae']:.4f}, test MAE "
        f"{metrics['test_mae']:.4f} ({metrics['wall_s']:.1f} s)"
    )
