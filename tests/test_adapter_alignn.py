"""ALIGNN adapter: exact restore, table features in both builders, trainable rows, ct train/ct alignn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("alignn")

import alignn.config
import alignn.graphs
import alignn.torch_graph_builder
import jarvis.core.specie
from adapter_fixtures import DATA, train_config, train_on_subset
from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig
from alignn.torch_graph_builder import build_pure_torch_graph
from jarvis.core.atoms import Atoms

from ct_plugins.adapters.alignn import ADAPTER, training_config
from ct_plugins.node_features import resolve_node_features
from ct_plugins.registry import load_table

POSCAR = DATA / "jarvis_sample" / "POSCAR-JVASP-10.vasp"
SMALL = dict(alignn_layers=1, gcn_layers=1, hidden_features=16, embedding_features=16,
             calculate_gradient=False, gradwise_weight=0.0)


@pytest.fixture(scope="module")
def table():
    return load_table("megnet16")


@pytest.fixture(scope="module")
def atoms():
    return Atoms.from_poscar(str(POSCAR))


def _upstream_names():
    return (jarvis.core.specie.get_node_attributes, alignn.graphs.get_node_attributes,
            alignn.config.TrainingConfig, vars(ALIGNNAtomWisePure)["__init__"])


def _model(width: int, seed: int = 1) -> ALIGNNAtomWisePure:
    torch.manual_seed(seed)
    return ALIGNNAtomWisePure(ALIGNNAtomWisePureConfig(
        name="alignn_atomwise_pure", atom_input_features=width, **SMALL))


def _forward(model, atoms, features: str) -> torch.Tensor:
    g, lg = build_pure_torch_graph(atoms, atom_features=features)
    lattice = torch.tensor(atoms.lattice_mat, dtype=torch.float32).unsqueeze(0)
    return model([g, lg, lattice])["out"]


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_patch_restores_upstream_bit_for_bit(atoms, table, mode):
    before_names = _upstream_names()
    before = _forward(_model(92), atoms, "cgcnn").detach()
    with ADAPTER.patch(table, mode):
        assert _upstream_names() != before_names
        # jarvis names keep working inside the patch
        assert np.array_equal(alignn.graphs.get_node_attributes("Si", atom_features="cgcnn"),
                              before_names[0]("Si", atom_features="cgcnn"))
        assert np.array_equal(alignn.graphs.get_node_attributes("Si"), before_names[0]("Si"))
    assert _upstream_names() == before_names
    assert torch.equal(_forward(_model(92), atoms, "cgcnn").detach(), before)


def test_both_feature_sites_serve_table_rows(atoms, table):
    with ADAPTER.patch(table, "frozen"):
        g, _ = build_pure_torch_graph(atoms, atom_features="megnet16")  # function-level import
        module_level = alignn.graphs.get_node_attributes("Si", atom_features="megnet16")
    assert np.allclose(g.ndata["atom_features"].numpy(), table.rows(atoms.elements))
    assert np.allclose(module_level, table.row("Si"))


def test_config_accepts_table_names_only_inside_patch(table):
    raw = {"atom_features": "megnet16:frozen", "model": {"name": "alignn_atomwise_pure"}}
    with pytest.raises(ValueError):
        alignn.config.TrainingConfig(**raw)
    with ADAPTER.patch(table, "frozen"):
        config = alignn.config.TrainingConfig(**raw)
        with pytest.raises(ValueError, match="neither a jarvis name"):
            alignn.config.TrainingConfig(**{**raw, "atom_features": "cgcnn99"})
    assert config.model.atom_input_features == table.dim


def test_frozen_features_fixed_trainable_rows_change(atoms, table):
    with ADAPTER.patch(table, "frozen"):
        frozen = _model(table.dim)
        g_frozen = build_pure_torch_graph(atoms, atom_features="megnet16")
    assert frozen.atom_embedding.__class__.__name__ == "MLPLayer"  # upstream layer untouched
    with ADAPTER.patch(table, "trainable"):
        model = _model(len(table))
        out = _forward(model, atoms, "megnet16")
    rows = model.atom_embedding[0].weight
    assert np.allclose(rows.detach().numpy(), table.matrix)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    (out - 1.0).abs().sum().backward()
    optimizer.step()
    assert not np.allclose(rows.detach().numpy(), table.matrix)
    assert np.allclose(g_frozen[0].ndata["atom_features"].numpy(), table.rows(atoms.elements))


@pytest.mark.parametrize("mode", ["frozen", "trainable"])
def test_ct_train_alignn_on_real_data(tmp_path, mode):
    train_on_subset("alignn", tmp_path, atom_features="megnet16", mode=mode)
    saved = json.loads((tmp_path / "out" / "alignn" / "config.json").read_text())
    assert saved["atom_features"] == f"megnet16:{mode}"


def test_ct_alignn_runs_upstream_train_alignn_with_table_in_config(tmp_path, ct):
    """A user's own config.json names the table; ``ct alignn`` runs upstream's training main
    (on 12 of the JARVIS structures: upstream builds a graph for every row of id_prop.csv)."""
    root = _first_structures(DATA / "jarvis_sample", tmp_path / "root", 12)
    cfg = train_config("alignn", root, tmp_path, epochs=1)
    config = training_config(cfg, "megnet16", {"train": 8, "val": 2, "test": 2}, tmp_path / "run")
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = ct("alignn", "--root_dir", str(root), "--config_name", str(tmp_path / "config.json"),
                "--output_dir", str(tmp_path / "run"), "--epochs", "1", "--target_key", "target",
                "--device", "cpu", "--threads", "1", cwd=tmp_path)
    assert "table 'megnet16' (94 x 16), frozen" in result.stdout
    assert (tmp_path / "run" / "prediction_results_test_set.csv").is_file()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny random-weight CT checkpoint (``ct-encoder:`` source, 16-d per-site rows)."""
    from test_node_features import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("ct") / "best.pt")


def test_graphs_carry_the_encoders_rows_per_site_and_restore(atoms, encoder):
    provider = resolve_node_features(f"ct-encoder:{encoder}")
    before = (_upstream_names(), alignn.torch_graph_builder.build_pure_torch_graph)
    with ADAPTER.patch_node_features(provider):
        g, _ = alignn.graphs.Graph.atom_dgl_multigraph(  # as alignn's pure-torch dataset calls it
            atoms, neighbor_strategy="pure_torch", atom_features=provider.name)
        config = alignn.config.TrainingConfig(atom_features=provider.name, model={"name": "alignn_atomwise_pure"})
    assert np.allclose(g.ndata["atom_features"].numpy(), provider.features(atoms.pymatgen_converter()))
    assert config.model.atom_input_features == provider.dim == 16
    assert (_upstream_names(), alignn.torch_graph_builder.build_pure_torch_graph) == before


def test_ct_train_alignn_with_encoder_features(tmp_path, encoder):
    metrics = train_on_subset("alignn", tmp_path, atom_features=f"ct-encoder:{encoder}", mode=None)
    saved = json.loads((tmp_path / "out" / "alignn" / "config.json").read_text())
    assert saved["atom_features"] == f"ct-encoder:{encoder}" and saved["model"]["atom_input_features"] == 16
    assert metrics["table_sha256"] == metrics["node_features"]["checkpoint_sha256"]


def test_ct_alignn_command_line_takes_an_encoder(tmp_path, ct, encoder):
    root = _first_structures(DATA / "jarvis_sample", tmp_path / "root", 12)
    config = training_config(train_config("alignn", root, tmp_path, epochs=1), "cgcnn",
                             {"train": 8, "val": 2, "test": 2}, tmp_path / "run")
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = ct("alignn", "--root_dir", str(root), "--config_name", str(tmp_path / "config.json"),
                "--output_dir", str(tmp_path / "run"), "--epochs", "1", "--target_key", "target",
                "--device", "cpu", "--threads", "1", "--atom-features", f"ct-encoder:{encoder}", cwd=tmp_path)
    assert "per-structure node features" in result.stdout and "(dim 16), frozen" in result.stdout
    assert (tmp_path / "run" / "prediction_results_test_set.csv").is_file()


def _first_structures(folder: Path, out: Path, n: int) -> Path:
    """An upstream dataset folder with the first ``n`` rows of ``folder``'s id_prop.csv."""
    import shutil

    out.mkdir()
    rows = (folder / "id_prop.csv").read_text().splitlines()[:n]
    (out / "id_prop.csv").write_text("\n".join(rows) + "\n")
    for row in rows:
        shutil.copy(folder / row.split(",")[0], out)
    return out
