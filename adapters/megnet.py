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
from pathlib import Path

from ct_plugins.adapter import Mode
from ct_plugins.adapters._common import (
    TableAdapter, element_rows, init_then, patch_or_upstream, swapped,
)
from ct_plugins.tables import EmbeddingTable, Missing


class MEGNetAdapter(TableAdapter):
    name = "megnet"
    upstream = "matgl"
    supported = ">=4.1,<4.2"
    summary = "MatGL MEGNet: node nn.Embedding initialised from the table (frozen or trainable)"

    @staticmethod
    @contextlib.contextmanager
    def _patch(table: EmbeddingTable, mode: Mode, missing: Missing) -> Iterator[None]:
        from matgl.models import MEGNet

        def after(model, *args, **kwargs) -> None:
            load_rows(model, table, mode, missing)

        with swapped(MEGNet, "__init__", init_then(vars(MEGNet)["__init__"], after)):
            yield


def load_rows(model, table: EmbeddingTable, mode: Mode, missing: Missing = "error") -> None:
    """Write the table rows for ``model.element_types`` into its node embedding."""
    import torch

    embedding = model.embedding.layer_node_embedding
    rows = element_rows(table, model.element_types, missing, dim=embedding.embedding_dim)
    with torch.no_grad():
        embedding.weight.copy_(torch.as_tensor(rows, dtype=embedding.weight.dtype))
    embedding.weight.requires_grad_(mode == "trainable")


# --- ct train megnet -------------------------------------------------------------------------
def train_split(splits: dict, table: EmbeddingTable | None, cfg, out: Path) -> dict:
    """The documented matgl path: Structure2Graph → MGLDataset → MGLDataLoader → MEGNet →
    ModelLightningModule → lightning.Trainer, with the patch active while the model is built."""
    import lightning as pl
    import numpy as np
    import torch
    from matgl.ext.pymatgen import Structure2Graph, get_element_list
    from matgl.graph.data import MGLDataLoader, MGLDataset, collate_fn_graph
    from matgl.models import MEGNet
    from matgl.utils.training import ModelLightningModule

    structures = [r.structure for recs in splits.values() for r in recs]
    elements = get_element_list(structures)
    converter = Structure2Graph(element_types=elements, cutoff=4.0)
    datasets = {
        name: MGLDataset(structures=[r.structure for r in recs],
                         labels={"target": [r.target for r in recs]}, converter=converter,
                         root=str(out / "graphs" / name), save_cache=False)
        for name, recs in splits.items()
    }
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    train_loader, val_loader, test_loader = MGLDataLoader(
        train_data=datasets["train"], val_data=datasets["val"], test_data=datasets["test"],
        collate_fn=collate_fn_graph, batch_size=cfg.batch_size, num_workers=0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    width = {} if table is None else {"dim_node_embedding": table.dim}  # None: upstream's 16
    with patch_or_upstream(ADAPTER, table, cfg.mode, cfg.missing):
        model = MEGNet(element_types=elements, cutoff=4.0, **width, **(SMALL if cfg.small else {}))
    targets = np.array([r.target for r in splits["train"]])
    module = ModelLightningModule(model=model, lr=cfg.lr or 1e-3, data_mean=float(targets.mean()),
                                  data_std=float(targets.std() or 1.0))
    trainer = pl.Trainer(max_epochs=cfg.epochs, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(out))
    trainer.fit(module, train_loader, val_loader)
    val = trainer.validate(module, val_loader, verbose=False)[0]["val_MAE"]
    test = trainer.test(module, test_loader, verbose=False)[0]["test_MAE"]
    saved = out / "model"
    module.model.save(saved)
    return {"val_mae": float(val), "test_mae": float(test), "model_dir": str(saved),
            "element_types": list(elements)}


SMALL = dict(dim_edge_embedding=16, nblocks=1, hidden_layer_sizes_input=(16, 16),
             hidden_layer_sizes_conv=(16, 16, 16), hidden_layer_sizes_output=(16, 8))

ADAPTER = MEGNetAdapter()
