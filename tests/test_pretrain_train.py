"""CT pretraining on tiny real data: resume equivalence, 2-process DDP, CLI, export provenance."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ct_plugins.pretrain.batching import TargetScaler
from ct_plugins.pretrain.checkpoint import BEST, LAST, load_checkpoint
from ct_plugins.pretrain.export import table_from_checkpoint
from ct_plugins.pretrain.model import CTConfig
from ct_plugins.pretrain.train import Budget, PretrainConfig, TrainConfig, pretrain
from ct_plugins.registry import load_table
from ct_plugins.tables import EmbeddingTable

TINY_MODEL = dict(embed_dim=8, n_layers=1, n_heads=2, ff_dim=16, head_hidden=8)
TINY_CONFIG = {"model": TINY_MODEL, "train": {"batch_size": 32, "val_fraction": 0.1, "test_fraction": 0.1}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, request) -> Path:
    """tests/data laid out like ../shared/data (the folder names the corpus loader expects)."""
    data = request.config.rootpath / "tests" / "data"
    root = tmp_path_factory.mktemp("shared_data")
    (root / "mp_compositions").mkdir()
    (root / "perovskites").mkdir()
    for name in ("e_form", "gap"):
        with open(data / f"mp_{name}_sample.csv", "rb") as src, gzip.open(
            root / "mp_compositions" / f"mp_{name}.csv.gz", "wb"
        ) as dst:
            shutil.copyfileobj(src, dst)
    for name in ("oqmd", "cmr"):
        shutil.copy(data / f"{name}_perovskites_sample.jsonl.gz", root / "perovskites" / f"{name}_perovskites.jsonl.gz")
    return root


@pytest.fixture(scope="module")
def samples(data_root, tmp_path_factory):
    from ct_plugins.pretrain.corpus import CorpusSpec, build_corpus

    spec = CorpusSpec(sources=("mp_compositions", "oqmd"), data_dir=data_root, cache=False,
                      workers=1, progress=False)
    corpus, _ = build_corpus(spec)
    return corpus


def tiny_config(epochs: int) -> PretrainConfig:
    return PretrainConfig(CTConfig(**TINY_MODEL), TrainConfig(epochs=epochs, batch_size=32))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-exact repeatability needs a fixed reduction order
    yield
    torch.set_num_threads(before)


@pytest.fixture
def trained_epochs(monkeypatch) -> list[int]:
    """The epochs each Trainer actually trains (a resume that restarts would train epoch 0)."""
    from ct_plugins.pretrain.train import Trainer

    seen: list[int] = []
    original = Trainer._train_epoch

    def spy(self, model):
        seen.append(self.state.epoch)
        return original(self, model)

    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    return seen


def test_resume_two_plus_two_equals_four_epochs(samples, tmp_path, one_thread, trained_epochs):
    from ct_plugins.pretrain.augment import Augmenter

    straight = tmp_path / "straight"
    pretrain(samples, tiny_config(4), straight, augment=Augmenter())
    chunked = tmp_path / "chunked"
    first = pretrain(samples, tiny_config(4), chunked, budget=Budget(stop_after_epochs=2), augment=Augmenter())
    assert first["completed_epochs"] == 2 and first["stopped_early"]
    trained_epochs.clear()
    pretrain(samples, tiny_config(4), chunked, resume=True, augment=Augmenter())
    assert trained_epochs == [2, 3]  # only the remaining epochs ran (0-based epoch index)
    a, b = load_checkpoint(straight / LAST), load_checkpoint(chunked / LAST)
    assert a["state"]["epoch"] == b["state"]["epoch"] == 4
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    history = json.loads((chunked / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert set(history[0]["val_mae"]) == {"ef@mp_compositions", "eg@mp_compositions", "ef@oqmd", "eg@oqmd"}
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["completed_epochs"] == 4 and set(metrics["test_mae"]) <= set(history[0]["val_mae"])
    assert set(metrics["mean_predictor_test_mae"]) == set(metrics["test_mae"])
    assert all(v > 0 for v in metrics["mean_predictor_test_mae"].values())


def test_existing_run_needs_resume_and_same_config(samples, tmp_path, one_thread, trained_epochs):
    from dataclasses import replace

    from ct_plugins.errors import InputError

    pretrain(samples, tiny_config(1), tmp_path)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(samples, tiny_config(1), tmp_path)
    other = tiny_config(1)
    other = replace(other, train=replace(other.train, batch_size=16, lr=0.01))
    with pytest.raises(InputError, match=r"config differs in train.batch_size: 32 -> 16; train.lr: 0.001 -> 0.01"):
        pretrain(samples, other, tmp_path, resume=True)
    trained_epochs.clear()
    extended = pretrain(samples, tiny_config(3), tmp_path, resume=True)  # a finished run grows
    assert trained_epochs == [1, 2] and extended["completed_epochs"] == 3
    with pytest.raises(InputError, match="already completed 3 epochs"):
        pretrain(samples, tiny_config(2), tmp_path, resume=True)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("weights", (0.0, 0.0))])
def test_pretraining_config_values_are_checked(field, value):
    from ct_plugins.errors import InputError

    with pytest.raises(InputError, match=field):
        TrainConfig(**{field: value})


def test_export_provenance_and_unseen_elements(samples, tmp_path, one_thread):
    pretrain(samples, tiny_config(1), tmp_path)
    table = table_from_checkpoint(load_checkpoint(tmp_path), "ct-tiny", recipe="pretrain/recipes/x.sh")
    meta = table.metadata
    assert table.dim == TINY_MODEL["embed_dim"]
    assert set(table.elements) == set(meta["element_counts"]) and "O" in table.elements
    assert "He" in meta["unseen_elements"] and "He" not in table
    assert len(table) + len(meta["unseen_elements"]) == 100
    assert meta["training_config"]["model"]["embed_dim"] == 8
    assert set(meta["metrics"]["test_mae"]) and meta["recipe"] == "pretrain/recipes/x.sh"
    assert meta["created_commit"]
    # Row of element Z is W[:, Z-1] + b.
    state = load_checkpoint(tmp_path)["model"]
    expected = state["atom_embedding.weight"][:, 7] + state["atom_embedding.bias"]
    assert torch.allclose(torch.from_numpy(table.row("O").copy()), expected)


def test_cli_pretrain_export_and_load_by_name(data_root, tmp_path, ct_home, ct):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    banned = tmp_path / "banned.txt"
    banned.write_text("TmPbO3\n")
    run = tmp_path / "run"
    result = ct("pretrain", "--data", "mp_compositions,oqmd", "--data-root", str(data_root),
                "--targets", "ef,eg", "--weights", "1,0.5", "--epochs", "2", "--config", str(config),
                "--exclude-formulas", str(banned), "--out", str(run))
    assert "test MAE" in result.stdout
    assert (run / BEST).is_file() and (run / "history.json").is_file()
    table_file = tmp_path / "ct-cli.safetensors"
    ct("export", str(run), "--name", "ct-cli", "--out", str(table_file))
    table = EmbeddingTable.load(table_file)
    data = table.metadata["source_data"]
    assert data["excluded_formula_count"] == 1 and data["cleaning"]["dropped"]["oqmd"]["excluded_formula"] >= 1
    assert table.metadata["training_config"]["train"]["weights"] == [1.0, 0.5]
    assert table.metadata["training_commit"] == table.metadata["created_commit"]
    from ct_plugins.files import file_sha256

    mp = data_root / "mp_compositions"
    assert data["data_files"] == {str(mp / f): file_sha256(mp / f) for f in ("mp_e_form.csv.gz", "mp_gap.csv.gz")} | {
        str(data_root / "perovskites" / "oqmd_perovskites.jsonl.gz"):
            file_sha256(data_root / "perovskites" / "oqmd_perovskites.jsonl.gz")}
    assert data["exclude_formula_files"] == {str(banned): file_sha256(banned)}
    assert table.metadata["runtime"]["torch"] == str(torch.__version__) and table.metadata["runtime"]["python"]
    shown = ct("tables", "show", str(table_file)).stdout
    for text in ("data files:", file_sha256(banned), "runtime:", f"torch {torch.__version__}"):
        assert text in shown, text
    ct("tables", "import", str(table_file), "--name", "ct-cli")
    assert load_table("ct-cli").dim == 8


def test_two_process_ddp(data_root, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    torchrun = Path(sys.executable).with_name("torchrun")
    run = tmp_path / "ddp"
    script = Path(__file__).with_name("ddp_ranks.py")  # ct pretrain, saving every rank's weights
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), "pretrain",
         "--data", "mp_compositions", "--data-root", str(data_root), "--epochs", "1", "--targets", "ef,eg,metal",
         "--config", str(config), "--out", str(run)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["completed_epochs"] == 1
    assert set(metrics["test_mae"]) == {"ef@mp_compositions", "eg@mp_compositions"}
    assert set(metrics["test_accuracy"]) == {"metal@mp_compositions"}
    history = json.loads((run / "history.json").read_text())  # train accuracy: summed over both processes
    assert 0 <= history[0]["train_accuracy"]["metal@mp_compositions"] <= 1
    ranks = [torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    trained = load_checkpoint(run / LAST)["model"]
    for key, tensor in ranks[0].items():  # DDP keeps every replica identical after each step
        assert torch.equal(tensor, ranks[1][key]), key
        assert torch.equal(tensor, trained[key]), key


@pytest.mark.parametrize("name", ["ct-mt", "ct-ef", "ct-eg", "ct"])
def test_shipped_tables_load_by_name(name):
    from ct_plugins.builtin_tables import SHIPPED_DIR

    if not (SHIPPED_DIR / "ct-mt.safetensors").is_file():
        pytest.skip("pretrained tables not shipped in this checkout")
    table = load_table(name)
    assert table.dim == 128 and len(table) > 50
    assert table.metadata["metrics"]["test_mae"] and table.metadata["unseen_elements"] is not None


def test_the_one_flag_default_is_the_v2_multitask_table_standardised():
    from ct_plugins.builtin_tables import SHIPPED_DIR

    if not (SHIPPED_DIR / "ct-mt-v2.safetensors").is_file():
        pytest.skip("pretrained tables not shipped in this checkout")
    default, standardised = load_table("ct"), load_table("ct-mt-v2:std")
    assert default.name == "ct-mt-v2:std" and default.elements == standardised.elements
    assert (default.matrix == standardised.matrix).all()
    assert abs(default.matrix.std(axis=0) - 1).max() < 1e-4
    assert (load_table("ct-mt-v1").matrix == load_table("ct-mt").matrix).all()  # v1 stays loadable


def test_resume_refuses_a_checkpoint_that_runs_code(data_root, tmp_path, ct):
    from test_safe_loading import write_evil

    marker = tmp_path / "PWNED"
    write_evil(tmp_path / "run" / LAST, marker)
    result = ct("pretrain", "--data", "mp_compositions", "--data-root", str(data_root), "--epochs", "1",
                "--out", str(tmp_path / "run"), "--resume", check=False)
    assert result.returncode == 2 and "last.pt: not safe to load" in result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


# --- the metal/non-metal term --------------------------------------------------------------------
def metal_config(epochs: int) -> PretrainConfig:
    return PretrainConfig(CTConfig(**TINY_MODEL), TrainConfig(targets=("ef", "eg", "metal"), weights=(1.0, 1.0, 0.5),
                                                            epochs=epochs, batch_size=32))


def test_metal_run_reports_accuracy_keeps_mae_selection_and_resumes(samples, tmp_path, one_thread):
    from ct_plugins.pretrain.curves import main as curves
    from ct_plugins.pretrain.train import validation_score

    straight, chunked = tmp_path / "straight", tmp_path / "chunked"
    pretrain(samples, metal_config(2), straight)
    pretrain(samples, metal_config(2), chunked, budget=Budget(stop_after_epochs=1))
    pretrain(samples, metal_config(2), chunked, resume=True)
    a, b = load_checkpoint(straight / LAST), load_checkpoint(chunked / LAST)
    assert all(torch.equal(tensor, b["model"][key]) for key, tensor in a["model"].items())
    metal = {"metal@mp_compositions", "metal@oqmd"}
    assert metal <= set(a["config"]["model"]["tasks"]) and a["provenance"]["metal_gap_ev"] == 1e-3
    history = json.loads((chunked / "history.json").read_text())
    for row in history:
        assert set(row["val_accuracy"]) == set(row["train_accuracy"]) == set(row["val_bce"]) == metal
        assert all(0 <= v <= 1 for v in row["val_accuracy"].values())
        assert not metal & set(row["val_mae"])  # accuracy is no MAE
    metrics = json.loads((straight / "metrics.json").read_text())
    assert set(metrics["test_accuracy"]) <= metal and set(metrics["mean_predictor_test_accuracy"]) == set(
        metrics["test_accuracy"])
    assert set(metrics["val_accuracy_best"]) == metal and not metal & set(metrics["test_mae"])
    # best.pt is chosen by MAE alone: the score is the one of the regression tasks.
    scaler = TargetScaler.from_dict(a["scaler"])
    weights = {"ef": 1.0, "eg": 1.0, "metal": 0.5}
    assert history[0]["val_score"] == pytest.approx(validation_score(history[0]["val_mae"], scaler, weights))
    assert curves([str(chunked), str(tmp_path / "curves.png")]) == 0


def test_runs_without_metal_write_what_they_did_and_old_checkpoints_resume(samples, tmp_path, one_thread):
    from ct_plugins.pretrain.checkpoint import save_checkpoint

    first = pretrain(samples, tiny_config(1), tmp_path)
    assert not [k for k in first if "accuracy" in k or "bce" in k]
    assert set(json.loads((tmp_path / "history.json").read_text())[0]) == {
        "epoch", "train_mae", "val_mae", "val_score", "lr", "seconds"}
    assert "metal_gap_ev" not in load_checkpoint(tmp_path / LAST)["provenance"]
    # A last.pt written before model.head_layers existed still resumes.
    old = load_checkpoint(tmp_path / LAST)
    del old["config"]["model"]["head_layers"]
    save_checkpoint(old, tmp_path / LAST)
    assert pretrain(samples, tiny_config(2), tmp_path, resume=True)["completed_epochs"] == 2


def test_cli_metal_target_and_its_errors(data_root, tmp_path, ct):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    common = ("--data-root", str(data_root), "--epochs", "1", "--config", str(config))
    result = ct("pretrain", "--data", "mp_compositions,oqmd", "--targets", "ef,eg,metal", "--weights", "1,1,0.5",
                *common, "--out", str(tmp_path / "run"))
    assert "val accuracy metal@mp_compositions=" in result.stdout and "test accuracy" in result.stdout
    # The v3 recipe names its targets and weights; without --targets the command takes them.
    recipe = json.loads((Path(__file__).parents[1] / "pretrain" / "recipes" / "ct_small_v3_metal.json").read_text())
    assert recipe["train"]["targets"] == ["ef", "eg", "metal"] and recipe["train"]["weights"][2] == 0.5
    tiny_recipe = tmp_path / "tiny_v3.json"
    tiny_recipe.write_text(json.dumps({"model": TINY_MODEL, "train": {**recipe["train"], "batch_size": 32}}))
    ct("pretrain", "--data", "mp_compositions", "--data-root", str(data_root), "--epochs", "1",
       "--config", str(tiny_recipe), "--out", str(tmp_path / "recipe"))
    train = load_checkpoint(tmp_path / "recipe" / LAST)["config"]["train"]
    assert (train["targets"], train["weights"]) == (["ef", "eg", "metal"], [1.0, 1.0, 0.5])
    no_gaps = tmp_path / "ef_only.csv"
    no_gaps.write_text("formula,ef\nNaCl,-2.1\nMgO,-3.0\nFe,0.0\nSiO2,-3.1\n")
    errors = {
        ("--data", "mp_compositions", "--targets", "ef,foo"): "unknown target(s) foo for --data mp_compositions",
        ("--data", str(no_gaps), "--targets", "ef,foo"): "no sample has target 'foo'",
        ("--data", str(no_gaps), "--targets", "ef,metal"): "target 'metal' is derived from eg labels",
        ("--data", "mp_compositions", "--targets", "ef,metal", "--weights", "1,-0.5"): "weights must be >= 0",
        ("--data", "mp_compositions", "--targets", "eg,metal,eg"): "targets must be distinct",
    }
    for n, (args, message) in enumerate(errors.items()):
        failed = ct("pretrain", *args, *common, "--out", str(tmp_path / f"bad{n}"), check=False)
        assert failed.returncode == 2 and message in failed.stderr, (args, failed.stderr)
        errors = [line for line in failed.stderr.splitlines() if line.startswith("ct: error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in failed.stderr
