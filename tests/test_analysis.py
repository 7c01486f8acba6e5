"""`ct analyze`: reduced real runs on shipped peer tables (few properties, folds and trees)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ct_plugins.analysis.config import AnalysisConfig, AnalysisError
from ct_plugins.analysis.periodic import cell
from ct_plugins.analysis.properties import load_property
from ct_plugins.analysis.regression import cross_validate, property_data
from ct_plugins.analysis.runner import analyze_table, check_table
from ct_plugins.elements import MAX_Z
from ct_plugins.registry import load_table
from ct_plugins.tables import EmbeddingTable

FAST = AnalysisConfig(properties=("atomic_radius", "electrical_conductivity"), folds=3,
                      iterations=40, k_max=4)


def test_periodic_cells_are_distinct_and_in_range():
    cells = [cell(z) for z in range(1, MAX_Z + 1)]
    assert len(set(cells)) == MAX_Z
    assert all(1 <= col <= 18 and 1 <= row <= 10 for col, row in cells)
    assert cell(26) == (8, 4) and cell(57) == (3, 9) and cell(71) == (3, 6)  # Fe, La, Lu


def test_conductivity_is_log_transformed_radius_is_not():
    conductivity, radius = load_property("electrical_conductivity"), load_property("atomic_radius")
    assert conductivity.transform == "log10" and radius.transform == "none"
    assert conductivity.target("Cu") == pytest.approx(np.log10(1 / 1.678e-08), rel=1e-3)
    assert conductivity.target("Ne") is None  # no value: skipped, not imputed


def test_r2_is_on_held_out_elements():
    """Random vectors fit their training rows perfectly but cannot predict unseen elements."""
    data = property_data(load_table("random200"), load_property("ionization_energy"))
    fit = cross_validate(data, AnalysisConfig(folds=3, iterations=60))
    assert len(fit.fold_r2) == 3 and fit.r2_mean < 0.3
    assert fit.oof_prediction.shape == data.y.shape


def test_cli_reduced_run_writes_reports_and_figures(tmp_path, ct_home, ct):
    out = tmp_path / "analysis"
    result = ct("analyze", "--table", "megnet16", "--table", "magpie", "--out", str(out),
                    "--properties", "atomic_radius,electrical_conductivity", "--folds", "3",
                    "--iterations", "40", "--k-max", "4")
    assert "atomic radius" in result.stdout
    report = json.loads((out / "report.json").read_text())
    megnet = report["tables"]["megnet16"]
    radius = megnet["properties"]["atomic_radius"]
    assert len(radius["r2_folds"]) == 3 and -1 < radius["r2_mean"] < 1
    assert radius["n_elements"] + radius["n_missing"] == megnet["n_elements"] == 94
    assert megnet["kmeans"]["chosen_k"] in (2, 3, 4) and "k3_clusters" in megnet["kmeans"]
    assert len(radius["shap_top_dims"]) == 5 and all(0 <= d["dim"] < 16 for d in radius["shap_top_dims"])
    for name in ("pca", "heatmap", "kmeans", "periodic_clusters", "parity", "shap_beeswarm"):
        assert (out / "megnet16" / f"{name}.png").stat().st_size > 10_000
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["r2"]) == {"megnet16", "magpie"}
    assert "| atomic radius |" in (out / "comparison.md").read_text()
    assert "![megnet16 heatmap](megnet16/heatmap.png)" in (out / "report.md").read_text()
    assert (out / "comparison_r2.png").is_file()
    similarity = report["similarity"]
    assert similarity["r"]["megnet16"]["megnet16"] == 1.0
    assert -1 <= similarity["r"]["megnet16"]["magpie"] <= 1 and similarity["shared_elements"]["magpie"]["megnet16"] > 80
    assert "Which tables are alike" in (out / "report.md").read_text() and (out / "similarity.png").is_file()
    again = ct("analyze", "--table", "megnet16", "--out", str(out), "--properties",
                   "atomic_radius,electrical_conductivity", "--folds", "3", "--iterations", "40", "--k-max", "4")
    assert "megnet16" in again.stdout
    assert json.loads((out / "report.json").read_text())["reused_tables"] == ["megnet16"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--table", "no-such-table"], "no table named 'no-such-table'"),
        (["--table", "megnet16", "--properties", "colour"], "unknown property 'colour'"),
        (["--table", "megnet16", "--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_cli_bad_input_exits_with_message(tmp_path, ct_home, ct, args, message):
    result = ct("analyze", *args, "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_table_too_small_for_folds(tmp_path, ct_home, ct):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.safetensors"
    EmbeddingTable.from_mapping("tiny", {e: rng.normal(size=4) for e in ["H", "O", "Fe", "Cu"]}).save(path)
    with pytest.raises(AnalysisError, match="needs at least 6"):
        check_table(EmbeddingTable.load(path), FAST)
    result = ct("analyze", "--table", str(path), "--out", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and "has 4 elements" in result.stderr


def test_property_with_too_few_values_is_skipped_with_count(tmp_path):
    """Noble gases and halogens have no resistivity in pymatgen: conductivity is skipped, radius runs."""
    elements = ["H", "He", "N", "O", "F", "Ne", "Cl", "Ar", "Br", "Kr", "Xe", "Rn"]
    rng = np.random.default_rng(1)
    table = EmbeddingTable.from_mapping("gases", {e: rng.normal(size=6) for e in elements})
    values = {k: load_property(k) for k in FAST.properties}
    result = analyze_table(table, values, tmp_path, AnalysisConfig(
        properties=FAST.properties, folds=2, iterations=20, k_max=3, shap=False))
    props = result.summary["properties"]
    assert props["electrical_conductivity"]["skipped"].startswith("only 2 elements have a value")
    assert props["atomic_radius"]["n_missing"] == len(table) - props["atomic_radius"]["n_elements"]


def test_mantel_finds_a_table_alike_to_its_rescaled_self_and_not_to_a_random_one():
    from ct_plugins.analysis.similarity import mantel
    from ct_plugins.registry import load_table

    magpie = load_table("magpie:std")
    rescaled = EmbeddingTable("rescaled", magpie.elements, magpie.matrix * 3.0 + 1.0, {})
    same = mantel(magpie, rescaled, permutations=99)
    assert same.r == pytest.approx(1.0) and same.p_value <= 0.01
    unrelated = mantel(magpie, load_table("random128"), permutations=99)
    assert abs(unrelated.r) < 0.3 and unrelated.p_value > 0.01
