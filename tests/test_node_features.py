"""Per-structure node features (``ct-encoder:CHECKPOINT``): the CT encoder's per-atom outputs as
CGCNN node features (paper Table 4, "atom+coordinate"), through the provide_node_features hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adapter_fixtures import TARGET, subset, train_on_subset
from test_safe_loading import marker, write_evil  # noqa: F401  (marker is a fixture)

from ct_plugins.errors import CheckpointError, InputError
from ct_plugins.node_features import ProviderSpec, parse_provider_spec, resolve_node_features
from ct_plugins.records import load_records
from ct_plugins.tables import ElementNotInTableError

DIM = 8  # C: the encoder output is 2C wide


def tiny_checkpoint(path, seen: set[str] | None = None):
    """A ``ct pretrain``-shaped checkpoint of a random-weight CT (1 layer, C = 8, centred)."""
    from ct_plugins.elements import SYMBOLS
    from ct_plugins.pretrain.checkpoint import save_checkpoint
    from ct_plugins.pretrain.model import CrystalTransformer, CTConfig

    torch.manual_seed(0)
    config = CTConfig(embed_dim=DIM, n_layers=1, n_heads=2, ff_dim=16, head_hidden=8,
                      center_coords=True, coord_scale=5.0)
    counts = {e: (1 if seen is None or e in seen else 0) for e in SYMBOLS}
    payload = {"model": CrystalTransformer(config).state_dict(),
               "config": {"model": config.to_dict(), "train": {}},
               "scaler": {"tasks": ["ef"], "mean": [0.0], "std": [1.0]},
               "provenance": {"element_counts": counts, "data": {"commit": "test"}},
               "state": {"epoch": 1, "best_epoch": 1}}
    return save_checkpoint(payload, path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ct") / "best.pt")


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    return [r.structure for r in load_records(subset(tmp_path_factory.mktemp("d"), 6), TARGET).records]


def test_spec_grammar():
    assert parse_provider_spec("ct-encoder:runs/v2/best.pt") == ProviderSpec("ct-encoder", "runs/v2/best.pt")
    assert parse_provider_spec("ct-encoder:a:b.pt:frozen").source == "a:b.pt"
    assert resolve_node_features("ct-mt:std") is None and resolve_node_features("ct") is None


def test_one_finite_row_per_site_in_site_order(checkpoint, structures):
    provider = resolve_node_features(f"ct-encoder:{checkpoint}")
    structure = structures[0]
    rows = provider.features(structure)
    assert provider.dim == 2 * DIM and rows.shape == (len(structure), 2 * DIM)
    assert rows.dtype == np.float32 and np.isfinite(rows).all()
    assert provider.sha256 and provider.provenance["checkpoint_sha256"] == provider.sha256
    reversed_ = structure.copy()
    reversed_.reverse()  # site order in = site order out
    np.testing.assert_allclose(provider.features(reversed_), rows[::-1], atol=1e-5)


def test_a_run_folder_names_its_best_checkpoint(checkpoint, structures):
    folder = resolve_node_features(f"ct-encoder:{checkpoint.parent}")
    assert folder.sha256 == resolve_node_features(f"ct-encoder:{checkpoint}").sha256


def test_features_are_contextual(checkpoint, structures):
    """The same element gets different vectors in different environments (a table row cannot)."""
    provider = resolve_node_features(f"ct-encoder:{checkpoint}")
    oxygen = [provider.features(s)[[i for i, site in enumerate(s) if site.specie.symbol == "O"]]
              for s in structures[:2]]
    assert not np.allclose(oxygen[0][0], oxygen[1][0], atol=1e-4)  # other compounds
    assert not np.allclose(oxygen[0][0], oxygen[0][1], atol=1e-4)  # other sites of one compound


def test_translation_invariant_with_centred_coordinates(checkpoint, structures):
    from pymatgen.core import Structure

    provider = resolve_node_features(f"ct-encoder:{checkpoint}")
    s = structures[1]
    moved = Structure(s.lattice, s.species, s.cart_coords + np.array([3.1, -7.2, 0.4]),
                      coords_are_cartesian=True, to_unit_cell=False)
    np.testing.assert_allclose(provider.features(moved), provider.features(s), atol=1e-4)


def test_unseen_elements_fail_or_get_the_mean_input(tmp_path, structures):
    elements = {el.symbol for el in structures[0].composition.elements}
    path = tiny_checkpoint(tmp_path / "partial.pt", seen=elements - {"O"})
    with pytest.raises(ElementNotInTableError, match="O never seen in training"):
        resolve_node_features(f"ct-encoder:{path}").features(structures[0])
    filled = resolve_node_features(f"ct-encoder:{path}", missing="mean")
    assert np.isfinite(filled.features(structures[0])).all()
    assert "O" in filled.provenance["filled_inputs"]


def test_bad_sources_are_input_errors(tmp_path, marker):  # noqa: F811
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        resolve_node_features(f"ct-encoder:{tmp_path / 'nope.pt'}")
    with pytest.raises(InputError, match="name an encoder"):
        resolve_node_features("ct-encoder")
    evil = write_evil(tmp_path / "evil.pt", marker)  # `marker` fails the test if the pickle ran
    with pytest.raises(CheckpointError, match="not safe to load"):
        resolve_node_features(f"ct-encoder:{evil}")
    torch.save({"model": {}, "config": {"model": {"bogus": 1}}, "scaler": {}, "provenance": {},
                "state": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a CrystalTransformer checkpoint"):
        resolve_node_features(f"ct-encoder:{tmp_path / 'other.pt'}")


@pytest.mark.parametrize("argv, message", [
    (["--atom-features", "ct-encoder:{missing}"], "no checkpoint at"),
    (["--atom-features", "ct-encoder:{ckpt}:trainable"], "frozen only"),
    (["--atom-features", "ct-encoder:{ckpt}", "--mode", "trainable"], "frozen only"),
])
def test_ct_train_errors_are_one_line(tmp_path, ct, checkpoint, argv, message):
    argv = [a.format(missing=tmp_path / "none.pt", ckpt=checkpoint) for a in argv]
    result = ct("train", "cgcnn", "--data", str(subset(tmp_path, 5)), "--target", TARGET,
                "--out", str(tmp_path / "out"), "--epochs", "1", *argv, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("upstream", ["megnet"])
def test_table_only_adapters_refuse_a_provider_in_one_line(tmp_path, ct, checkpoint, upstream):
    result = ct("train", upstream, "--data", str(subset(tmp_path, 5)), "--target", TARGET,
                "--out", str(tmp_path / "out"), "--atom-features", f"ct-encoder:{checkpoint}", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"adapter '{upstream}' takes element tables only" in result.stderr


# --- CGCNN consumes it ------------------------------------------------------------------------
cgcnn2 = pytest.importorskip("cgcnn2")


def test_cgcnn_dataset_serves_the_provider_rows_and_restores(tmp_path, checkpoint):
    from cgcnn2.data import CIFData

    from ct_plugins.adapters.cgcnn import ADAPTER, _read_cif, write_dataset

    records = load_records(subset(tmp_path, 4), TARGET).records
    folder = write_dataset(tmp_path / "data", records, None)
    provider = resolve_node_features(f"ct-encoder:{checkpoint}")
    before = {n: vars(CIFData)[n] for n in ("_load_item", "_load_item_fast")}
    with ADAPTER.patch_node_features(provider):
        (atom_fea, nbr_fea, _), _, cif_id = CIFData(str(folder))[0]
    expected = provider.features(_read_cif(folder / f"{cif_id}.cif"))
    np.testing.assert_array_equal(atom_fea.numpy(), expected)
    assert {n: vars(CIFData)[n] for n in before} == before
    assert CIFData(str(folder))[0][0][0].shape[1] == 92  # upstream's own features again


def test_ct_train_cgcnn_with_encoder_features(tmp_path, checkpoint):
    metrics = train_on_subset("cgcnn", tmp_path, 30, atom_features=f"ct-encoder:{checkpoint}",
                              mode=None)
    assert metrics["table_dim"] == 2 * DIM and metrics["mode"] == "frozen"
    assert metrics["table_sha256"] == metrics["node_features"]["checkpoint_sha256"]


def test_ct_cgcnn_command_line_takes_a_provider(tmp_path, ct, checkpoint):
    from ct_plugins.adapters.cgcnn import write_dataset

    records = load_records(subset(tmp_path, 18), TARGET).records
    sets = [write_dataset(tmp_path / name, records[i::3], None) for i, name in enumerate(("tr", "va", "te"))]
    result = ct("cgcnn", "-trs", str(sets[0]), "-vs", str(sets[1]), "-ts", str(sets[2]), "-e", "1",
                "-bs", "6", "--n-conv", "1", "-ji", "t", "--atom-features", f"ct-encoder:{checkpoint}",
                "--threads", "1", cwd=tmp_path)
    assert (tmp_path / "output_t" / "best_model.ckpt").is_file()
    assert "per-structure node features" in result.stdout and f"(dim {2 * DIM}), frozen" in result.stdout


def test_the_untrained_encoder_control_keeps_the_config_and_drops_the_weights(checkpoint, tmp_path, structures):
    from benchmarks.untrained_encoder import main
    from ct_plugins.pretrain.checkpoint import load_checkpoint

    out = tmp_path / "untrained" / "best.pt"
    assert main([str(checkpoint), str(out), "--seed", "3"]) == 0
    trained, control = load_checkpoint(checkpoint), load_checkpoint(out)
    assert control["config"] == trained["config"] and control["provenance"]["untrained_control"]["seed"] == 3
    assert any(not torch.equal(trained["model"][k], control["model"][k]) for k in trained["model"])
    assert resolve_node_features(f"ct-encoder:{out}").compute(structures[0]).shape[1] == 2 * DIM
    assert main([str(tmp_path / "nothing"), str(tmp_path / "x.pt")]) == 2


def test_an_exported_encoder_file_gives_the_checkpoints_features(ct, checkpoint, tmp_path, structures):
    out = tmp_path / "enc.safetensors"
    assert "fp16" in ct("export-encoder", str(checkpoint), "--out", str(out)).stdout
    exact = resolve_node_features(f"ct-encoder:{checkpoint}").features(structures[0])
    half = resolve_node_features(f"ct-encoder:{out}").features(structures[0])
    assert np.allclose(half, exact, atol=1e-2) and not np.array_equal(half, exact)
    ct("export-encoder", str(checkpoint), "--out", str(out), "--fp32")
    assert np.allclose(resolve_node_features(f"ct-encoder:{out}").features(structures[0]), exact, atol=1e-6)
    assert ct("export-encoder", str(checkpoint), "--out", str(tmp_path / "e.pt"), check=False).returncode == 2
    out.write_bytes(out.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a CT encoder file"):
        resolve_node_features(f"ct-encoder:{out}")


def test_a_shipped_encoder_loads_by_name_and_refuses_a_tampered_file(tmp_path, structures, monkeypatch):
    from ct_plugins import node_features

    assert {"ct-ef-v2", "ct-mt-v2"} <= set(node_features.shipped_encoders())
    provider = resolve_node_features("ct-encoder:ct-ef-v2")
    assert provider.dim == 256 and provider.features(structures[0]).shape == (len(structures[0]), 256)
    assert provider.provenance["checkpoint"].endswith("ct-ef-v2.safetensors")
    tampered = tmp_path / "encoders"
    tampered.mkdir()
    (tampered / "MANIFEST.json").write_text(json.dumps({"ct-ef-v2.safetensors": {"sha256": "0" * 64}}))
    (tampered / "ct-ef-v2.safetensors").write_bytes(
        (node_features.SHIPPED_ENCODERS / "ct-ef-v2.safetensors").read_bytes())
    monkeypatch.setattr(node_features, "SHIPPED_ENCODERS", tampered)
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        resolve_node_features("ct-encoder:ct-ef-v2")
