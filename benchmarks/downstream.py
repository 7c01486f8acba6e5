"""Downstream tasks for the benchmarks: real perovskite subsets written as `ct train` jsonl files.

A task's records are chosen by reduced formula (a stable hash order), so every scale draws from
the same formulas and the list can be handed to pretraining (`--exclude-formulas`) to keep the
downstream labels out of the table.
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
SHARED = REPO.parent / "shared" / "data" / "perovskites"
TEST_DATA = REPO / "tests" / "data"
EF_BOUND = 5.0  # eV/atom; OQMD has unphysical outliers up to 25 eV/atom


@dataclass(frozen=True)
class Task:
    name: str
    file: str  # file name under ../shared/data/perovskites (or tests/data at smoke scale)
    smoke_file: str
    field: str
    per_cell: bool  # CMR heats of formation are per 5-atom cell
    unit: str
    stands_in_for: str


TASKS = {
    "oqmd-ef": Task("oqmd-ef", "oqmd_perovskites.jsonl.gz", "oqmd_perovskites_sample.jsonl.gz",
                    "formation_energy_per_atom", False, "eV/atom",
                    "MP 2018.6.1 Ef (paper Tables 2-4) and the paper's perovskite set"),
    "oqmd-eg": Task("oqmd-eg", "oqmd_perovskites.jsonl.gz", "oqmd_perovskites_sample.jsonl.gz",
                    "band_gap", False, "eV", "MP 2018.6.1 Eg (paper Tables 2-4)"),
    "cmr-ef": Task("cmr-ef", "cmr_perovskites.jsonl.gz", "cmr_perovskites_sample.jsonl.gz",
                   "heat_of_formation_per_cell", True, "eV/atom",
                   "a second database for transfer (paper Table 5)"),
    "cmr-eg": Task("cmr-eg", "cmr_perovskites.jsonl.gz", "cmr_perovskites_sample.jsonl.gz",
                   "band_gap", False, "eV", "a second database for transfer (paper Table 5)"),
}


@dataclass(frozen=True)
class Prepared:
    path: Path
    n_records: int
    n_dropped_unlabelled: int
    n_dropped_outliers: int
    formulas: list[str]
    source: str


def prepare(task: Task, n_max: int | None, smoke: bool, cache: Path) -> Prepared:
    """Write up to ``n_max`` labelled records of ``task`` with a ``target`` field (eV/atom or eV)."""
    source = (TEST_DATA / task.smoke_file) if smoke else (SHARED / task.file)
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} is missing: the benchmarks read the real data sets in ../shared/data "
            "(see its README), or use --scale smoke for the copies in tests/data"
        )
    kept, unlabelled, outliers = [], 0, 0
    for record in _records(source):
        value = record.get(task.field)
        if value is None:
            unlabelled += 1
            continue
        target = value / _atoms(record["formula"]) if task.per_cell else float(value)
        if task.unit == "eV/atom" and abs(target) > EF_BOUND:
            outliers += 1
            continue
        kept.append({"id": str(record["id"]), "formula": record["formula"], "cif": record["cif"],
                     "target": target})
    kept.sort(key=lambda r: (_formula_rank(r["formula"]), r["id"]))
    kept = kept[:n_max] if n_max else kept
    path = cache / f"{task.name}-{'smoke' if smoke else len(kept)}.jsonl.gz"
    write_jsonl(path, kept)
    formulas = sorted({reduced_formula(r["formula"]) for r in kept})
    return Prepared(path, len(kept), unlabelled, outliers, formulas, str(source))


def _records(path: Path) -> Iterator[dict]:
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

