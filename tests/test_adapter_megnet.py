"""MatGL MEGNet adapter: exact restore, frozen vs trainable rows, save/load round trip, ct train."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("matgl")

from adapter_fixtures import TARGET, subset, train_on_subset
from matgl.ext.pymatgen import Structure2Graph, get_element_list
from matgl.graph.data import MGLDataLoader, MGLDataset, collate_fn_graph
from matgl.models import MEGNet
from matgl.utils.training import ModelLightningModule

from ct_plugins.adapters._common import projected
from ct_plugins.records import load_records
from ct_plugins.adapters.megnet import ADAPTER, SMALL
from ct_plugins.registry import load_table


@pytest.fixture(scope="module")
def table():
    return load_table("megnet16")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("megnet")
    records = load_records(subset(folder, 12), TARGET).records
    structures = [r.structure for r in records]
    elements = get_element_list(structures)
    data = MGLDataset(structures=structures, labels={"target": [r.target for r in records]},
                      converter=Structure2Graph(elements, cutoff=4.0), root=str(folder / "g"),
                      save_cache=False)
    loader, _ = MGLDataLoader(train_data=data, val_data=data, collate_fn=collate_fn_graph,
                              batch_size=12, num_workers=0)
    return elements, next(iter(loader))


def _model(elements, dim=16, seed=5) -> MEGNet:
    torch.manual_seed(seed)
    return MEGNet(element_types=elements, dim_node_embedding=dim, cutoff=4.0, **SMALL)


def _run(model, batch) -> torch.Tensor:
    """Upstream's own forward wrapper (it derives positions from the lattice)."""
    g, lat, state, _ = batch
    return ModelLightningModule(model=model)(g=g.clone(), lat=lat, state_attr=state)


def _predict(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return _run(model, batch)


def _step(model, batch) -> None:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    torch.nn.functional.mse_loss(_run(model, batch), batch[3]).backward()
    optimizer.step()


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_patch_restores_upstream_bit_for_bit(batch, table, mode):
    elements, data = batch
    init = vars(MEGNet)["__init__"]
    before = _predict(_model(elements), data)
    with ADAPTER.patch(table, mode):
        assert vars(MEGNet)["__init__"] is not init
    assert vars(MEGNet)["__init__"] is init
    assert torch.equal(_predict(_model(elements), data), before)


def _node_rows(model) -> np.ndarray:
    return model.embedding.layer_node_embedding.weight.detach().numpy().copy()


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_rows_start_at_table_and_train_only_when_trainable(batch, table, mode):
    elements, data = batch
    with ADAPTER.patch(table, mode):
        model = _model(elements)
    assert np.allclose(_node_rows(model), table.rows(elements))
    _step(model, data)
    assert np.allclose(_node_rows(model), table.rows(elements)) == (mode == "frozen")


def test_other_dimension_uses_fixed_pca_projection(batch):
    elements, _ = batch
    wide = load_table("cgcnn92")
    with ADAPTER.patch(wide, "frozen"):
        model = _model(elements, dim=8)
    assert np.allclose(_node_rows(model), projected(wide.rows(elements), 8), atol=1e-6)


def test_trained_model_saves_and_loads_with_matgl(batch, table, tmp_path):
    import matgl

    elements, data = batch
    with ADAPTER.patch(table, "trainable"):
        model = _model(elements)
    _step(model, data)
    model.save(tmp_path / "saved")
    loaded = matgl.load_model(tmp_path / "saved")  # outside the patch: plain upstream
    assert type(loaded) is MEGNet
    assert np.allclose(_node_rows(loaded), _node_rows(model))
    assert torch.allclose(_predict(loaded, data), _predict(model, data))


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_ct_train_megnet_on_real_data(tmp_path, mode):
    import matgl

    metrics = train_on_subset("megnet", tmp_path, atom_features="megnet16", mode=mode)
    loaded = matgl.load_model(metrics["model_dir"])
    rows = load_table("megnet16").rows(metrics["element_types"])
    # upstream's Lightning loop leaves frozen rows alone and trains trainable ones
    assert np.allclose(_node_rows(loaded), rows) == (mode == "frozen")
