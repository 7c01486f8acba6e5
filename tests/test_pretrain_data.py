"""Pretraining data on real test data: tokens, merging, perovskite loaders, cleaning, cache, jarvis."""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Element

from ct_plugins.pretrain import jarvis_datasets, structure_parsing
from ct_plugins.pretrain.cleaning import clean
from ct_plugins.pretrain.cleaning_report import (
    DUPLICATE_ID,
    EXCLUDED_FORMULA,
    NONFINITE_TARGET,
    OUT_OF_BOUNDS,
    TOO_MANY_ATOMS,
    UNKNOWN_ELEMENT,
    UNLABELLED,
    UNPARSABLE_STRUCTURE,
    CleaningReport,
    RecordError,
)
from ct_plugins.pretrain.compositions import composition_sample, composition_samples
from ct_plugins.pretrain.corpus import CMR_TARGETS, OQMD_TARGETS, CorpusSpec, build_corpus, exclude_formulas
from ct_plugins.pretrain.formulas import normalize_formula
from ct_plugins.pretrain.jarvis_datasets import jarvis_online_samples, paper_split, read_split
from ct_plugins.pretrain.samples import Sample
from ct_plugins.pretrain.structure_files import read_jsonl, structure_samples
from ct_plugins.pretrain.structures import sample_from_record, sample_from_structure, structure_from_text

from conftest import DATA, SHARED_DATA

OQMD = DATA / "oqmd_perovskites_sample.jsonl.gz"
CMR = DATA / "cmr_perovskites_sample.jsonl.gz"
MP_EF, MP_EG = DATA / "mp_e_form_sample.csv", DATA / "mp_gap_sample.csv"
JARVIS = DATA / "jarvis_sample"
SPLITS = SHARED_DATA / "splits"
needs_shared = pytest.mark.skipif(not SPLITS.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
FAST = dict(workers=1, progress=False)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty parse cache, never the user's."""
    monkeypatch.setenv("CT_PLUGINS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["formula", "target"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return path


# ------------------------------------------------------------------ compositions


def test_fe2o3_tokens_are_the_reduced_formula_in_electronegativity_order():
    sample = composition_sample("Fe4O6", {"ef": -1.0})
    assert sample.formula == "Fe2O3" and sample.id == "Fe2O3"
    assert sample.z.tolist() == [26, 26, 8, 8, 8] and sample.z.dtype == np.int64
    assert sample.is_composition and sample.coords is None and sample.lattice is None
    assert composition_sample("O3Fe2", {}).z.tolist() == sample.z.tolist()  # input order is irrelevant
    assert composition_sample("SrTiO3", {}).z.tolist() == [38, 22, 8, 8, 8]  # X: Sr 0.95 < Ti 1.54 < O 3.44


def test_formula_normalisation_matches_pymatgen():
    for formula in ("Mn4O16P4", "Li2Mn2O4", "Fe3H28(S2O15)2", "Co4O14Sb4"):
        assert normalize_formula(formula) == Composition(formula).reduced_formula


def read_csv_targets(path: Path) -> dict[str, list[float]]:
    by_formula: dict[str, list[float]] = defaultdict(list)
    with open(path) as handle:
        for row in csv.DictReader(handle):
            by_formula[Composition(row["formula"]).reduced_formula].append(float(row["target"]))
    return by_formula


def test_composition_samples_merge_ef_and_eg_by_reduced_formula():
    samples = composition_samples(MP_EF, MP_EG, progress=False)
    ef, eg = read_csv_targets(MP_EF), read_csv_targets(MP_EG)
    by_formula = {s.formula: s for s in samples}
    assert set(by_formula) == set(ef) | set(eg)
    assert len(samples) == len(by_formula)  # one sample per reduced formula
    for formula, sample in by_formula.items():
        assert sample.source == "mp_compositions"
        assert set(sample.targets) == {name for name, values in (("ef", ef), ("eg", eg)) if formula in values}
        if formula in ef:
            assert sample.targets["ef"] == pytest.approx(np.mean(ef[formula]))
        assert sorted(sample.z.tolist()) == sorted(composition_sample(formula, {}).z.tolist())
    both = [s for s in samples if len(s.targets) == 2]
    assert both, "the test files share formulas, so some samples carry both targets"


def test_polymorphs_are_averaged(tmp_path):
    rows = list(csv.DictReader(open(MP_EF)))
    real = rows[0]  # the same compound written with twice the formula units: a second "polymorph"
    doubled = "".join(f"{el}{int(n) * 2}" for el, n in Composition(real["formula"]).get_el_amt_dict().items())
    path = write_csv(tmp_path / "ef.csv", [real, {"formula": doubled, "target": rows[1]["target"]}])
    (sample,) = composition_samples(path, None, progress=False, cache=False)
    assert sample.targets["ef"] == pytest.approx((float(real["target"]) + float(rows[1]["target"])) / 2)


# ------------------------------------------------------------------ structures


def test_oqmd_samples_are_perovskite_cells_with_record_targets():
    records = {r["id"]: r for r in read_jsonl(OQMD)}
    samples = structure_samples(OQMD, OQMD_TARGETS, cache=False, **FAST)
    assert len(samples) == len(records) == 120
    for sample in samples:
        record = records[sample.id]
        assert sample.source == "oqmd" and sample.n_atoms == 5
        assert sample.formula == Composition(record["formula"]).reduced_formula
        assert sample.targets == {"ef": record["formation_energy_per_atom"], "eg": record["band_gap"]}
        assert sample.coords.dtype == np.float32 and sample.coords.shape == (5, 3)
        assert sample.lattice.dtype == np.float32 and sample.lattice.shape == (3, 3)
        x = [Element.from_Z(int(z)).X for z in sample.z]
        assert x == sorted(x)  # token order: ascending electronegativity


def test_cmr_heat_of_formation_is_divided_by_the_atoms_in_the_cell():
    records = {r["id"]: r for r in read_jsonl(CMR)}
    samples = structure_samples(CMR, CMR_TARGETS, per_cell=("ef",), cache=False, **FAST)
    assert len(samples) == 80
    for sample in samples:
        assert sample.n_atoms == 5
        assert sample.targets["ef"] == pytest.approx(records[sample.id]["heat_of_formation_per_cell"] / 5)
        assert sample.targets["eg"] == records[sample.id]["band_gap"]


def test_structure_sample_matches_pymatgen_positions():
    record = read_jsonl(OQMD)[0]
    structure = structure_from_text(record["cif"], "cif")
    sample = sample_from_structure(structure, id=record["id"], source="oqmd")
    by_site = sorted((site.specie.Z, *np.round(site.coords, 4)) for site in structure)
    by_token = sorted((int(z), *np.round(xyz.astype(float), 4)) for z, xyz in zip(sample.z, sample.coords))
    assert by_site == by_token
    np.testing.assert_allclose(sample.lattice, structure.lattice.matrix, atol=1e-5)


def test_poscar_and_jarvis_atoms_give_the_same_sample():
    from jarvis.core.atoms import Atoms

    path = sorted(JARVIS.glob("*.vasp"))[0]
    from_pymatgen = sample_from_structure(structure_from_text(path.read_text(), "poscar"), id="p")
    from_jarvis = sample_from_structure(Atoms.from_poscar(str(path)), id="j")
    assert from_pymatgen.z.tolist() == from_jarvis.z.tolist()
    np.testing.assert_allclose(from_pymatgen.coords, from_jarvis.coords, atol=1e-4)
    np.testing.assert_allclose(from_pymatgen.lattice, from_jarvis.lattice, atol=1e-5)


# ------------------------------------------------------------------ cleaning


def bad_copy_of_oqmd(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The real OQMD sample plus bad inputs made from real records (targets stay real)."""
    records = read_jsonl(OQMD)
    good = records[:20]
    nan_ef = {**records[20], "id": "bad-nan", "formation_energy_per_atom": float("nan")}
    outlier = {**records[21], "id": "bad-outlier", "formation_energy_per_atom": 25.4366}  # OQMD's real outlier value
    unlabelled = {**records[22], "id": "bad-unlabelled", "formation_energy_per_atom": None, "band_gap": None}
    broken_cif = {**records[23], "id": "bad-cif", "cif": records[23]["cif"][:300]}
    md_cif = re.sub(r"(?m)^  ([A-Z][a-z]?)  \1(\d+)", r"  Md  Md\2", records[24]["cif"], count=1)
    unknown = {**records[24], "id": "bad-element", "cif": md_cif}  # Md: Z 101, outside the vocabulary
    bad = [nan_ef, outlier, unlabelled, broken_cif, unknown, good[0]]
    path = write_jsonl_gz(tmp_path / "oqmd_bad.jsonl.gz", good + bad)
    expected = {"bad-nan": NONFINITE_TARGET, "bad-outlier": OUT_OF_BOUNDS, "bad-unlabelled": UNLABELLED,
                "bad-cif": UNPARSABLE_STRUCTURE, "bad-element": UNKNOWN_ELEMENT, good[0]["id"]: DUPLICATE_ID}
    return path, expected


def test_cleaning_report_counts_every_reason_and_never_crashes(tmp_path):
    path, expected = bad_copy_of_oqmd(tmp_path)
    report = CleaningReport()
    loaded = structure_samples(path, OQMD_TARGETS, source="oqmd", report=report, cache=False, **FAST)
    kept, report = clean(loaded, report=report)
    assert report.counts == {reason: 1 for reason in expected.values()}
    assert report.events["oqmd"] == report.counts
    for record_id, reason in expected.items():
        assert any(example.startswith(f"oqmd:{record_id}") for example in report.examples[reason]), reason
    ids = {s.id for s in kept}
    assert "bad-nan" in ids  # NaN Ef dropped, the real band gap kept
    assert next(s for s in kept if s.id == "bad-nan").targets.keys() == {"eg"}
    duplicate = next(i for i, reason in expected.items() if reason == DUPLICATE_ID)
    assert not ids & (set(expected) - {"bad-nan", duplicate})
    assert report.kept_count == len(kept) == 21 and report.kept == {"oqmd": 21}
    assert "out_of_bounds_target 1" in report.summary()
    assert json.loads(json.dumps(report.to_dict()))["dropped_total"][UNPARSABLE_STRUCTURE] == 1


def test_strict_mode_raises_with_the_record_id(tmp_path):
    path, expected = bad_copy_of_oqmd(tmp_path)
    with pytest.raises(RecordError) as error:
        structure_samples(path, OQMD_TARGETS, report=CleaningReport(strict=True), cache=False, **FAST)
    assert expected[error.value.record_id] == error.value.reason
    assert error.value.record_id in str(error.value)


def test_clean_accepts_raw_records_and_limits_atoms():
    record = read_jsonl(OQMD)[0]
    targets = {"ef": record["formation_energy_per_atom"]}
    raw = [{"id": record["id"], "source": "oqmd", "cif": record["cif"], "targets": targets},
           {"id": "no-structure", "targets": {"ef": 0.0}}]
    kept, report = clean(raw)
    assert [s.id for s in kept] == [record["id"]] and report.counts == {UNPARSABLE_STRUCTURE: 1}
    kept, report = clean(kept, max_atoms=4)
    assert kept == [] and report.counts == {TOO_MANY_ATOMS: 1}


def test_unknown_element_in_a_formula_is_reported(tmp_path):
    rows = list(csv.DictReader(open(MP_EF)))[:3]
    rows.append({"formula": "Md1O2", "target": rows[0]["target"]})  # Md (Z 101) is outside the vocabulary
    path = write_csv(tmp_path / "ef.csv", rows)
    report = CleaningReport()
    samples = composition_samples(path, None, report=report, progress=False, cache=False)
    assert len(samples) == 3 and report.counts == {UNKNOWN_ELEMENT: 1}


# ------------------------------------------------------------------ leakage guard, corpus, cache


def test_exclude_formulas_accepts_any_spelling():
    samples = structure_samples(OQMD, OQMD_TARGETS, cache=False, **FAST)
    banned = samples[0].formula
    spelled = "".join(f"{el}{int(n) * 2}" for el, n in reversed(Composition(banned).get_el_amt_dict().items()))
    kept = exclude_formulas(samples + [composition_sample(banned, {"ef": 0.0})], {spelled})
    assert banned not in {s.formula for s in kept}
    assert len(kept) == len(samples) - sum(s.formula == banned for s in samples)


@pytest.fixture
def data_root(tmp_path) -> Path:
    """tests/data laid out like ../shared/data."""
    root = tmp_path / "shared"
    (root / "mp_compositions").mkdir(parents=True)
    (root / "perovskites").mkdir()
    for name, path in (("e_form", MP_EF), ("gap", MP_EG)):
        with open(path, "rb") as src, gzip.open(root / "mp_compositions" / f"mp_{name}.csv.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    for name, path in (("oqmd", OQMD), ("cmr", CMR)):
        shutil.copy(path, root / "perovskites" / f"{name}_perovskites.jsonl.gz")
    return root


def test_default_corpus_and_cached_reload_are_identical(data_root, private_cache):
    spec = CorpusSpec(data_dir=data_root, exclude=frozenset({"TmPbO3"}), progress=False)
    first, report = build_corpus(spec)
    assert report.kept == {"mp_compositions": 581, "oqmd": 119, "cmr": 80}
    assert report.counts == {TOO_MANY_ATOMS: 8, EXCLUDED_FORMULA: 1}
    assert len(list((private_cache / "samples").glob("*.npz"))) == 3
    second, report2 = build_corpus(spec)
    assert report2.to_dict() == report.to_dict()
    for a, b in zip(first, second, strict=True):
        assert (a.id, a.source, a.formula, a.targets) == (b.id, b.source, b.formula, b.targets)
        np.testing.assert_array_equal(a.z, b.z)
        if not a.is_composition:
            np.testing.assert_array_equal(a.coords, b.coords)
            np.testing.assert_array_equal(a.lattice, b.lattice)


def test_damaged_cache_is_rebuilt(data_root, private_cache):
    spec = CorpusSpec(sources=("oqmd",), data_dir=data_root, progress=False)
    expected = len(build_corpus(spec)[0])
    for path in (private_cache / "samples").glob("*.npz"):
        path.write_bytes(b"not a zip file")
    assert len(build_corpus(spec)[0]) == expected


def test_missing_data_fails_with_a_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared data folder"):
        build_corpus(CorpusSpec(sources=("mp",), data_dir=tmp_path, progress=False))
    with pytest.raises(ValueError, match="unknown corpus sources"):
        build_corpus(CorpusSpec(sources=("nope",), data_dir=tmp_path))


def test_user_files_as_corpus_sources(tmp_path):
    ef, eg = read_csv_targets(MP_EF), read_csv_targets(MP_EG)
    both = sorted(set(ef) & set(eg))[:5]
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["formula", "ef", "eg"])
        writer.writeheader()
        writer.writerows({"formula": f, "ef": ef[f][0], "eg": eg[f][0]} for f in both)
    spec = CorpusSpec(sources=(str(path), str(OQMD)), progress=False)
    corpus, report = build_corpus(spec)
    assert report.kept == {"mine": 5, "oqmd_perovskites_sample": 120}
    mine = {s.formula: s.targets for s in corpus if s.source == "mine"}
    assert mine == {f: {"ef": ef[f][0], "eg": eg[f][0]} for f in both}
    assert all(s.targets.keys() == {"ef", "eg"} for s in corpus)


# ------------------------------------------------------------------ online jarvis path, official splits


def jarvis_records(id_field: str, targets: dict[str, str]) -> list[dict]:
    """dft_3d-like records from the ALIGNN sample POSCARs: real gaps, Ef from the split if present."""
    from jarvis.core.atoms import Atoms

    ef_split = SPLITS / "dft_3d_formation_energy_peratom.json.zip"
    ef = {k: v for part in read_split(ef_split).values() for k, v in part.items()} if ef_split.exists() else {}
    records = []
    with open(JARVIS / "id_prop.csv") as handle:
        for name, gap in csv.reader(handle):
            jid = name.removeprefix("POSCAR-").removesuffix(".vasp")
            atoms = Atoms.from_poscar(str(JARVIS / name)).to_dict()
            records.append({id_field: jid, "atoms": atoms, targets["eg"]: float(gap), targets["ef"]: ef.get(jid, "na")})
    return records


@pytest.fixture
def fake_figshare(monkeypatch):
    import jarvis.db.figshare as figshare

    calls = []

    def data(dataset="dft_2d", store_dir=None):
        calls.append(dataset)
        id_field, targets = jarvis_datasets.JARVIS_DATASETS[dataset]
        return jarvis_records(id_field, targets)

    monkeypatch.setattr(figshare, "data", data)
    return calls


def test_jarvis_online_samples_read_figshare_records(fake_figshare):
    samples = jarvis_online_samples("dft_3d", progress=False)
    assert fake_figshare == ["dft_3d"] and len(samples) == 50
    gaps = {row[0].removeprefix("POSCAR-").removesuffix(".vasp"): float(row[1])
            for row in csv.reader(open(JARVIS / "id_prop.csv"))}
    for sample in samples:
        assert sample.source == "jarvis_dft_3d" and sample.coords is not None
        assert sample.targets["eg"] == gaps[sample.id]
        assert "ef" not in sample.targets or math.isfinite(sample.targets["ef"])
    megnet = jarvis_online_samples("megnet", progress=False)  # other id/target field names
    assert len(megnet) == 50 and {s.source for s in megnet} == {"jarvis_megnet"}
    with pytest.raises(ValueError, match="unknown jarvis dataset"):
        jarvis_online_samples("nope")


@needs_shared
def test_jarvis_online_samples_keep_only_the_split_part(fake_figshare):
    split = SPLITS / "dft_3d_formation_energy_peratom.json.zip"
    train_ids = set(paper_split(split)["train"])
    samples = jarvis_online_samples("dft_3d", split, parts=("train",), progress=False)
    assert samples and {s.id for s in samples} <= train_ids
    records = jarvis_records("jid", jarvis_datasets.JARVIS_DATASETS["dft_3d"][1])
    assert len(samples) == sum(r["jid"] in train_ids for r in records)
    assert all("ef" in s.targets for s in samples)  # every split id has a real Ef
    spec = CorpusSpec(sources=("dft_3d",), split_file=split, split_parts=("val", "test"), progress=False)
    corpus, report = build_corpus(spec)
    assert corpus and not {s.id for s in corpus} & train_ids and report.kept == {"jarvis_dft_3d": len(corpus)}


@needs_shared
def test_paper_split_is_60000_5000_4239():
    split = paper_split(SPLITS / "megnet_e_form.json.zip")
    assert {part: len(ids) for part, ids in split.items()} == {"train": 60000, "val": 5000, "test": 4239}
    assert not set(split["train"]) & set(split["test"])
    assert all(i.startswith(("mp-", "mvc-")) for i in split["val"])  # MP 2018.6.1 ids


def test_paper_split_rejects_a_zip_without_one_json(tmp_path):
    path = tmp_path / "bad.json.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")
    with pytest.raises(ValueError, match="expected one .json"):
        paper_split(path)


def test_sample_is_immutable_and_record_errors_are_collected():
    sample = composition_sample("NaCl", {"ef": -2.0})
    with pytest.raises(AttributeError):
        sample.formula = "KCl"  # type: ignore[misc]
    report = CleaningReport()
    assert sample_from_record({"id": "x", "poscar": "not a poscar"}, report=report) is None
    assert report.counts == {UNPARSABLE_STRUCTURE: 1}
    assert isinstance(sample, Sample)


def test_parallel_parsing_gives_the_serial_result():
    items = [(r["id"], r["cif"], "cif") for r in read_jsonl(CMR)[:12]] + [("broken", "data_x\n", "cif")]
    serial = structure_parsing.parse_structures(items, workers=1, progress=False)
    parallel = structure_parsing.parse_structures(items, workers=2, progress=False)
    assert [i for i, _ in parallel] == [i for i, _ in serial] == [i for i, *_ in items]
    assert parallel[-1][1][0] == serial[-1][1][0] == UNPARSABLE_STRUCTURE
    for (_, a), (_, b) in zip(serial[:-1], parallel[:-1]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@needs_shared
@pytest.mark.slow
def test_full_shared_corpus_cleaning_report():
    """The whole default corpus (about a minute uncached): every record is kept or explained."""
    corpus, report = build_corpus(CorpusSpec(progress=False))
    read = {"oqmd": len(read_jsonl(SHARED_DATA / "perovskites" / "oqmd_perovskites.jsonl.gz")),
            "cmr": len(read_jsonl(SHARED_DATA / "perovskites" / "cmr_perovskites.jsonl.gz"))}
    for source, count in read.items():
        assert report.kept[source] + sum(report.events[source].values()) == count
    assert report.events["oqmd"][OUT_OF_BOUNDS] >= 1  # the 25.4 eV/atom record
    assert all(s.n_atoms <= 64 for s in corpus) and report.kept_count == len(corpus)
    assert all(-10 <= s.targets.get("ef", 0) <= 5 and 0 <= s.targets.get("eg", 0) <= 20 for s in corpus)


def test_mp_structures_source_reads_real_mp_cells_with_ef_and_eg(tmp_path):
    root = tmp_path / "data"
    (root / "mp_structures").mkdir(parents=True)
    shutil.copy(DATA / "mp_structures_sample.jsonl.gz", root / "mp_structures" / "mp_2018_structures.jsonl.gz")
    samples, report = build_corpus(CorpusSpec(sources=("mp_structures",), data_dir=root, **FAST))
    records = {r["id"]: r for r in read_jsonl(DATA / "mp_structures_sample.jsonl.gz")}
    assert len(samples) == len(records) == 135 and report.kept["mp_structures"] == 135
    for sample in samples:
        record = records[sample.id]
        assert sample.source == "mp_structures" and not sample.is_composition
        assert sample.formula == Composition(record["formula"]).reduced_formula
        assert sample.targets == {"ef": record["formation_energy_per_atom"], "eg": record["band_gap"]}
