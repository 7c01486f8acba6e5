"""The `paper` scale's MP tasks through jarvis-tools' online `megnet` dataset, offline: the
download is replaced by a shipped sample in the same format (36 real MP 2018 structures)."""

from __future__ import annotations

import copy
import gzip
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import paper_data
from benchmarks.downstream import TASKS
from benchmarks.run import SCALES, _split_file, main, prepare_task, run_one
from benchmarks.experiments import Variant
from ct_plugins.records import load_records, split_records

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "jarvis_megnet_sample.json"


@pytest.fixture
def megnet(monkeypatch) -> list[str]:
    """``jarvis.db.figshare.data`` reads the shipped sample; returns the datasets asked for."""
    import jarvis.db.figshare as figshare

    calls: list[str] = []

    def data(dataset="dft_2d", store_dir=None):
        calls.append(dataset)
        return json.loads(SAMPLE.read_text())

    monkeypatch.setattr(figshare, "data", data)
    return calls


def sample_entries() -> list[dict]:
    return json.loads(SAMPLE.read_text())


def jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def leaderboard_zip(path: Path, split: dict[str, list[str]]) -> Path:
    """A split file in the JARVIS-Leaderboard layout: {part: {id: target}} in a zip."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("split.json", json.dumps({p: {i: "0.0" for i in ids} for p, ids in split.items()}))
    return path


def test_megnet_entries_become_ct_train_records(tmp_path, megnet):
    prepared = paper_data.prepare_paper(TASKS["mp-ef"], tmp_path, split_zip=None, sizes=(24, 6))
    assert megnet == ["megnet"]
    records = jsonl(prepared.path)
    entries = {e["id"]: e for e in sample_entries()}
    assert len(records) == prepared.n_records == 36 and prepared.n_test_fixed == 6
    assert {tuple(sorted(r)) for r in records} == {("cif", "formula", "id", "target")}
    loaded = {r.id: r for r in load_records(prepared.path, "target").records}
    for record in records:  # real targets, and the structure jarvis-tools converted
        entry = entries[record["id"]]
        assert record["target"] == entry["e_form"]
        structure = loaded[record["id"]].structure
        assert sorted(s.symbol for s in structure.species) == sorted(entry["atoms"]["elements"])
        assert structure.composition.reduced_formula == record["formula"]
    split = json.loads(Path(prepared.split_file).read_text())
    assert {k: len(v) for k, v in split.items()} == {"train": 24, "val": 6, "test": 6}
    assert [r["id"] for r in records[:6]] == split["test"]  # the test part is written first
    assert prepared.formulas == sorted({r["formula"] for r in records[:6]})
    parts = split_records(list(loaded.values()), 0, prepared.split_file)
    assert {k: len(v) for k, v in parts.items()} == {"train": 24, "val": 6, "test": 6}
    again = paper_data.prepare_paper(TASKS["mp-ef"], tmp_path, split_zip=None, sizes=(24, 6))
    assert again == prepared and megnet == ["megnet"]  # converted once, not downloaded again


def test_the_paper_split_file_is_followed_and_missing_ids_are_counted(tmp_path, megnet):
    ids = [e["id"] for e in sample_entries()]
    official = {"train": ids[:26] + ["mp-0-not-here"], "val": ids[26:31], "test": ids[31:]}
    split_zip = leaderboard_zip(tmp_path / "megnet_gappbe.json.zip", official)
    prepared = paper_data.prepare_paper(TASKS["mp-eg"], tmp_path, split_zip=split_zip)
    split = json.loads(Path(prepared.split_file).read_text())
    assert split == {"train": ids[:26], "val": ids[26:31], "test": ids[31:]}
    meta = json.loads((tmp_path / "mp-eg-paper.meta.json").read_text())
    assert meta["split_ids_not_in_data"] == 1 and "megnet_gappbe" in prepared.source
    gaps = {e["id"]: e["gap pbe"] for e in sample_entries()}
    assert all(r["target"] == gaps[r["id"]] for r in jsonl(prepared.path))


def test_unlabelled_and_outlier_entries_are_counted(megnet):
    entries = copy.deepcopy(sample_entries())
    entries[0]["e_form"] = "na"  # jarvis' missing value
    entries[1]["e_form"] = 7.5  # beyond EF_BOUND
    kept, unlabelled, outliers = paper_data.megnet_records(TASKS["mp-ef"], entries)
    assert (len(kept), unlabelled, outliers) == (34, 1, 1)


def test_paper_scale_trains_the_mp_task_on_the_paper_split(tmp_path, megnet, monkeypatch):
    ids = [e["id"] for e in sample_entries()]
    official = {"train": ids[:26], "val": ids[26:31], "test": ids[31:]}
    split_zip = leaderboard_zip(tmp_path / "megnet_e_form.json.zip", official)
    monkeypatch.setattr(paper_data, "default_split_zip", lambda task: split_zip)
    # the paper scale's data path, with smoke-sized training
    scale = replace(SCALES["paper"], epochs={"cgcnn": 1}, small_model=True)
    prepared = prepare_task("mp-ef", scale, tmp_path)
    assert [_split_file("mp-ef", prepared, seed, tmp_path) for seed in (0, 1)] == [Path(prepared.split_file)] * 2
    metrics = run_one(Variant("CGCNN default", "cgcnn", "default"), "mp-ef", prepared.path, 0, scale,
                      tmp_path, _split_file("mp-ef", prepared, 0, tmp_path))
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (26, 5, 5)
    offline = prepare_task("oqmd-ef", replace(SCALES["smoke"], online_mp=True), tmp_path)
    assert offline.split_file is None and megnet == ["megnet"]  # perovskite tasks stay offline


def test_help_says_what_the_paper_scale_downloads(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "jarvis-tools" in text and "60000/5000/4239" in text and "GPU" in text
