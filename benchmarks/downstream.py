"""Downstream tasks for the benchmarks: real data subsets written as `ct train` jsonl files.

Perovskite tasks: records are chosen by reduced formula (a stable hash order), so every scale
draws from the same formulas, and all of them are handed to pretraining (`--exclude-formulas`)
to keep the downstream labels out of the table. MP tasks (`mp-ef`, `mp-eg`) have a fixed test
part: every record whose reduced formula hashes into the first `MP_TEST_FRACTION`; only those
formulas are excluded from pretraining (like the paper, which pretrains on MP's training part).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TEST_DATA = REPO / "tests" / "data"
EF_BOUND = 5.0  # eV/atom; OQMD has unphysical outliers up to 25 eV/atom, MP 4 below -5
EG_BOUND = 12.0  # eV; MP's solid He (16.6 eV) is the only gap above 9.1
MP_TEST_FRACTION = 0.1  # of distinct reduced formulas


@dataclass(frozen=True)
class Task:
    name: str
    file: str  # path under ../shared/data (file name under tests/data at smoke scale)
    smoke_file: str
    field: str
    per_cell: bool  # CMR heats of formation are per 5-atom cell
    unit: str
    stands_in_for: str
    fixed_test: bool = False  # a formula-disjoint test part shared by every seed (MP tasks)


TASKS = {
    "oqmd-ef": Task("oqmd-ef", "perovskites/oqmd_perovskites.jsonl.gz", "oqmd_perovskites_sample.jsonl.gz",
                    "formation_energy_per_atom", False, "eV/atom",
                    "MP 2018.6.1 Ef (paper Tables 2-4) and the paper's perovskite set"),
    "oqmd-eg": Task("oqmd-eg", "perovskites/oqmd_perovskites.jsonl.gz", "oqmd_perovskites_sample.jsonl.gz",
                    "band_gap", False, "eV", "MP 2018.6.1 Eg (paper Tables 2-4)"),
    "cmr-ef": Task("cmr-ef", "perovskites/cmr_perovskites.jsonl.gz", "cmr_perovskites_sample.jsonl.gz",
                   "heat_of_formation_per_cell", True, "eV/atom",
                   "a second database for transfer (paper Table 5)"),
    "cmr-eg": Task("cmr-eg", "perovskites/cmr_perovskites.jsonl.gz", "cmr_perovskites_sample.jsonl.gz",
                   "band_gap", False, "eV", "a second database for transfer (paper Table 5)"),
    "mp-ef": Task("mp-ef", "mp_structures/mp_2018_structures.jsonl.gz", "mp_structures_sample.jsonl.gz",
                  "formation_energy_per_atom", False, "eV/atom", "MP 2018.6.1 Ef (paper Tables 1-4)",
                  fixed_test=True),
    "mp-eg": Task("mp-eg", "mp_structures/mp_2018_structures.jsonl.gz", "mp_structures_sample.jsonl.gz",
                  "band_gap", False, "eV", "MP 2018.6.1 Eg (paper Tables 1-4)", fixed_test=True),
}


@dataclass(frozen=True)
class Prepared:
    path: Path
    n_records: int
    n_dropped_unlabelled: int
    n_dropped_outliers: int
    formulas: list[str]  # the formulas pretraining must not see (all, or the fixed test part's)
    source: str
    n_test_fixed: int = 0  # records of the fixed test part (fixed_test tasks), written first
    split_file: str | None = None  # one split for every seed (the paper scale's MP split)


def prepare(task: Task, n_max: int | None, smoke: bool, cache: Path) -> Prepared:
    """Write up to ``n_max`` labelled records of ``task`` with a ``target`` field (eV/atom or eV).

    For a ``fixed_test`` task, ``n_max`` counts the training pool (train + val); the fixed test
    part is written in full before it.
    """
    source = (TEST_DATA / task.smoke_file) if smoke else (SHARED / task.file)
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} is missing: the benchmarks read the real data sets in ../shared/data "
            "(see its README), or use --scale smoke for the copies in tests/data"
        )
    kept, unlabelled, outliers = labelledread_jsonl(task, source)
    kept.sort(key=lambda r: (_formula_rank(r["formula"]), r["id"]))
    test = [r for r in kept if task.fixed_test and is_mp_test_formula(r["formula"])]
    pool = [r for r in kept if not (task.fixed_test and is_mp_test_formula(r["formula"]))]
    pool = pool[:n_max] if n_max else pool
    written = test + pool
    path = cache / f"{task.name}-{'smoke' if smoke else len(written)}.jsonl.gz"
    write_jsonl(path, written)
    held_out = test if task.fixed_test else pool
    formulas = sorted({reduced_formula(r["formula"]) for r in held_out})
    return Prepared(path, len(written), unlabelled, outliers, formulas, str(source), len(test))


def labelledread_jsonl(task: Task, source: Path) -> tuple[list[dict], int, int]:
    """(records with a ``target``, unlabelled count, outlier count) of a task's source file."""
    kept, unlabelled, outliers = [], 0, 0
    for record in read_jsonl(source):
        value = record.get(task.field)
        if value is None:
            unlabelled += 1
            continue
        target = value / _atoms(record["formula"]) if task.per_cell else float(value)
        bound = EF_BOUND if task.unit == "eV/atom" else EG_BOUND
        if abs(target) > bound:
            outliers += 1
            continue
        kept.append({"id": str(record["id"]), "formula": record["formula"], "cif": record["cif"],
                     "target": target})
    return kept, unlabelled, outliers


def is_mp_test_formula(formula: str) -> bool:
    """Whether a formula belongs to the fixed MP test part (a stable hash of the reduced formula)."""
    return int(_formula_rank(formula)[:8], 16) < MP_TEST_FRACTION * 16**8


def fixed_test_split(prepared: Prepared, seed: int, val_fraction: float = 0.1) -> dict[str, list[str]]:
    """ids per part: the fixed test part, and a seeded train/val draw from the training pool."""
    import numpy as np

    ids = [r["id"] for r in read_jsonl(prepared.path)]
    test, pool = ids[: prepared.n_test_fixed], ids[prepared.n_test_fixed:]
    order = np.random.default_rng(seed).permutation(len(pool))
    n_val = max(1, round(val_fraction * len(pool)))
    return {"train": [pool[i] for i in order[n_val:]], "val": [pool[i] for i in order[:n_val]], "test": test}


def read_jsonl(path: Path) -> Iterator[dict]:
    """The records of a gzipped jsonl file, one per non-blank line (the pair of ``write_jsonl``)."""
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _atoms(formula: str) -> float:
    from pymatgen.core import Composition

    return Composition(formula).num_atoms


def reduced_formula(formula: str) -> str:
    from pymatgen.core import Composition

    return Composition(formula).reduced_formula


def _formula_rank(formula: str) -> str:
    return hashlib.sha256(reduced_formula(formula).encode()).hexdigest()


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel benchmark processes share the folder
    with gzip.open(tmp, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    tmp.replace(path)

