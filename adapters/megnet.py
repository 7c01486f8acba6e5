"""MatGL MEGNet (PyG backend): embedding tables as the initial node embedding.

Upstream embeds node types with ``EmbeddingBlock.layer_node_embedding = nn.Embedding(
len(element_types), dim_node_embedding)``, row ``i`` for ``element_types[i]``. The patch wraps
``MEGNet.__init__`` and, after upstream built the model (same RNG use as without us), copies the
table rows of ``element_types`` into that ``nn.Embedding``:

* ``trainable``: the rows are the initial value and train with the model;
* ``frozen``: the weight gets ``requires_grad=False`` and stays the table.

The module stays an ``nn.Embedding`` of upstream's shape, so ``model.save`` /
``matgl.load_model`` round-trip unchanged (a replaced module would not load). When the table
dimension differs from ``dim_node_embedding`` the rows go through a fixed PCA projection
(:func:`ct_plugins.adapters._common.projected`); ``ct train megnet`` avoids that by building the
model with ``dim_node_embedding = table.dim``. After ``load_model`` the weight is an ordinary
trainable parameter again (it holds the saved rows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ct_plugins.adapter import Adapter, Mode, TrainJob, TrainResult
from ct_plugins.adapters._common import init_then, rows_at_width, swapped
from ct_plugins.tables import EmbeddingTable, Missing


class MEGNetAdapter(Adapter):
    name = "megnet"
    upstream = "matgl"
    supported = ">=4.1,<4.2"  # = the `matgl` extra in pyproject.toml (a test checks)
    summary = "MatGL MEGNet: node nn.Embedding initialised from the table (frozen or trainable)"
    supports_early_stopping = True

    def install(self, table: EmbeddingTable, mode: Mode, missing: Missing) -> contextlib.AbstractContextManager:
        return _patched(table, mode, missing)

    def train(self, job: TrainJob) -> TrainResult:
        return train_split(job)


@contextlib.contextmanager
def _patched(table: EmbeddingTable, mode: Mode, missing: Missing) -> Iterator[None]:
    from matgl.models import MEGNet

    def after(model, *args, **kwargs) -> None:
        load_rows(model, table, mode, missing)

    with swapped(MEGNet, "__init__", init_then(vars(MEGNet)["__init__"], after)):
        yield


def load_rows(model, table: EmbeddingTable, mode: Mode, missing: Missing = "error") -> None:
    """Write the table rows for ``model.element_types`` into its node embedding."""
    import torch

    embedding = model.embedding.layer_node_embedding
    rows = rows_at_width(table, model.element_types, missing, embedding.embedding_dim)
    with torch.no_grad():
        embedding.weight.copy_(torch.as_tensor(rows, dtype=embedding.weight.dtype))
    embedding.weight.requires_grad_(mode == "trainable")


# --- ct train megnet -------------------------------------------------------------------------
def train_split(job: TrainJob) -> TrainResult:
    """The documented matgl path: Structure2Graph → MGLDataset → MGLDataLoader → MEGNet →
    ModelLightningModule → lightning.Trainer, with the patch active while the model is built."""
    import lightning as pl
    import numpy as np
    import torch
    from matgl.ext.pymatgen import Structure2Graph, get_element_list
    from matgl.graph.data import MGLDataLoader, MGLDataset, collate_fn_graph
    from matgl.models import MEGNet
    from matgl.utils.training import ModelLightningModule

    splits, table, out = job.splits, job.table, job.out
    structures = [r.structure for recs in splits.values() for r in recs]
    elements = get_element_list(structures)
    converter = Structure2Graph(element_types=elements, cutoff=4.0)
    datasets = {
        name: MGLDataset(structures=[r.structure for r in recs],
                         labels={"target": [r.target for r in recs]}, converter=converter,
                         root=str(out / "graphs" / name), save_cache=False)
        for name, recs in splits.items()
    }
    pl.seed_everything(job.seed, workers=True, verbose=False)
    train_loader, val_loader, test_loader = MGLDataLoader(
        train_data=datasets["train"], val_data=datasets["val"], test_data=datasets["test"],
        collate_fn=collate_fn_graph, batch_size=job.batch_size, num_workers=0,
        generator=torch.Generator().manual_seed(job.seed),
    )
    width = {} if table is None else {"dim_node_embedding": table.dim}  # None: upstream's 16
    with ADAPTER.patch_or_upstream(table, job.mode, job.missing):
        model = MEGNet(element_types=elements, cutoff=4.0, **width, **(SMALL if job.small else {}))
    targets = np.array([r.target for r in splits["train"]])
    module = ModelLightningModule(model=model, lr=job.lr or 1e-3, data_mean=float(targets.mean()),
                                  data_std=float(targets.std() or 1.0))
    reporter = _epoch_reporter(job)
    trainer = pl.Trainer(max_epochs=job.epochs, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(out),
                         callbacks=[reporter])
    trainer.fit(module, train_loader, val_loader)
    # Fixed epochs score the last model (as always); early stopping the best-validation one.
    model_epoch = trainer.current_epoch
    if job.patience is not None and reporter.best_state is not None:
        module.load_state_dict(reporter.best_state)
        model_epoch = reporter.best_epoch
    val = trainer.validate(module, val_loader, verbose=False)[0]["val_MAE"]
    test = trainer.test(module, test_loader, verbose=False)[0]["test_MAE"]
    saved = out / "model"
    module.model.save(saved)
    return TrainResult(float(val), float(test),
                       {"model_dir": str(saved), "element_types": list(elements),
                        "model_epoch": model_epoch})


def _epoch_reporter(job: TrainJob):
    """A lightning callback handing matgl's own epoch MAEs to ``job.report_epoch``; with
    early stopping it also keeps the weights of the best validation MAE (in memory) and ends
    training (Lightning's own ``trainer.should_stop``) once ``job.should_stop()``."""
    import copy
    import math

    import lightning as pl

    class EpochReporter(pl.Callback):
        best_state: dict | None = None
        best_epoch: int | None = None
        best_val = math.inf

        def on_train_epoch_end(self, trainer, module) -> None:
            metrics = trainer.callback_metrics
            epoch, val = trainer.current_epoch + 1, metrics.get("val_MAE")
            job.report_epoch(epoch, metrics.get("train_MAE"), val)
            if job.patience is None:
                return
            if val is not None and float(val) < self.best_val:
                self.best_val, self.best_epoch = float(val), epoch
                self.best_state = copy.deepcopy(module.state_dict())
            if job.should_stop():
                trainer.should_stop = True

    return EpochReporter()


SMALL = dict(dim_edge_embedding=16, nblocks=1, hidden_layer_sizes_input=(16, 16),
             hidden_layer_sizes_conv=(16, 16, 16), hidden_layer_sizes_output=(16, 8))

ADAPTER = MEGNetAdapter()
