"""Write the leakage list: every formula a downstream evaluation may use, one per line.

    python -m benchmarks.holdout [--n-max 3000] [--out pretrain/recipes/holdout_formulas.txt]

Formulas of all real test data in tests/data (MP compositions and structures, OQMD/CMR
perovskites, the JARVIS POSCARs) and of the benchmark downstream tasks
(:mod:`benchmarks.downstream`): the perovskite tasks at the given number of records per task,
the fixed test part of the MP tasks. Pretraining reads the list as data
(``ct pretrain --exclude-formulas``, ``pretrain/recipes/ship_tables.sh``); it never imports
the benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import tempfile
from pathlib import Path

from benchmarks.downstream import TASKS, TEST_DATA, prepare

REPO = Path(__file__).resolve().parents[1]
HOLDOUT_FILE = REPO / "pretrain" / "recipes" / "holdout_formulas.txt"


def read_holdout(path: Path = HOLDOUT_FILE) -> set[str]:
    return set(path.read_text().split())


def test_data_formulas(data: Path) -> set[str]:
    from pymatgen.core import Structure

    formulas = set()
    for name in ("mp_e_form_sample.csv", "mp_gap_sample.csv"):
        with open(data / name) as handle:
            formulas |= {row["formula"] for row in csv.DictReader(handle)}
    for name in ("oqmd_perovskites_sample.jsonl.gz", "cmr_perovskites_sample.jsonl.gz",
                 "mp_structures_sample.jsonl.gz"):
        with gzip.open(data / name, "rt") as handle:
            formulas |= {json.loads(line)["formula"] for line in handle if line.strip()}
    for poscar in sorted((data / "jarvis_sample").glob("*.vasp")):
        formulas.add(Structure.from_file(poscar).composition.reduced_formula)
    return formulas


def downstream_formulas(n_max: int) -> set[str]:
    formulas: set[str] = set()
    with tempfile.TemporaryDirectory() as work:
        for task in TASKS.values():
            formulas |= set(prepare(task, n_max, False, Path(work)).formulas)
    return formulas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HOLDOUT_FILE)
    parser.add_argument("--n-max", type=int, default=3000, help="records per downstream task")
    args = parser.parse_args()
    from ct_plugins.pretrain.formulas import normalize_formula

    raw = test_data_formulas(TEST_DATA) | downstream_formulas(args.n_max)
    formulas = sorted({normalize_formula(f) for f in raw})
    args.out.write_text("".join(f + "\n" for f in formulas))
    print(f"wrote {len(formulas)} formulas to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
