"""Learning-curve plots of a pretraining run folder."""

from __future__ import annotations

import json

from ct_plugins.pretrain.curves import main


def test_curves_plot_every_task_of_the_history(tmp_path):
    history = [{"epoch": e, "train_mae": {"ef@mp": 0.3 / e, "eg@mp": 0.6 / e},
                "val_mae": {"ef@mp": 0.35 / e, "eg@mp": 0.7 / e}} for e in (1, 2, 3)]
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert main([str(tmp_path), str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 5000


def test_curves_of_a_folder_without_history_fail_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "curves.png")]) == 2
    assert "history.json not found" in capsys.readouterr().err


def test_curves_plot_metal_accuracy_beside_the_mae_panels(tmp_path):
    from ct_plugins.pretrain.curves import panels

    history = [{"epoch": e, "train_mae": {"eg@mp": 0.6 / e}, "val_mae": {"eg@mp": 0.7 / e},
                "train_accuracy": {"metal@mp": 0.7}, "val_accuracy": {"metal@mp": 0.6 + e / 10},
                "train_bce": {"metal@mp": 0.5}, "val_bce": {"metal@mp": 0.6}} for e in (1, 2)]
    assert panels(history) == [("eg@mp", "mae"), ("metal@mp", "accuracy")]
    assert panels([{k: v for k, v in row.items() if "accuracy" not in k and "bce" not in k} for row in history]) == [
        ("eg@mp", "mae")]
    (tmp_path / "history.json").write_text(json.dumps(history))
    assert main([str(tmp_path), str(tmp_path / "curves.png")]) == 0
