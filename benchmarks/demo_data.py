"""Write the demo set shipped in the wheel: real OQMD perovskites kept out of CT pretraining.

    python -m benchmarks.demo_data [--n 2000]

Records of ``../shared/data/perovskites/oqmd_perovskites.jsonl.gz`` whose reduced formula is in
the leakage list (``pretrain/recipes/holdout_formulas.txt``, the formulas removed from the
pretraining corpus of the shipped tables), labelled with |Ef| < 5 eV/atom, in a stable hash
order of their ids. Output: ``ct_plugins/demo_data/oqmd_holdout_perovskites.jsonl.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

from benchmarks.downstream import EF_BOUND, SHARED, TASKS, read_jsonl, reduced_formula
from benchmarks.holdout import HOLDOUT_FILE, read_holdout

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "ct_plugins" / "demo_data" / "oqmd_holdout_perovskites.jsonl.gz"
FIELDS = ("id", "formula", "formation_energy_per_atom", "band_gap", "cif")


def demo_records(source: Path, holdout: set[str], n: int) -> list[dict]:
    kept = [r for r in read_jsonl(source) if r.get("formation_energy_per_atom") is not None
            and abs(r["formation_energy_per_atom"]) < EF_BOUND
            and reduced_formula(r["formula"]) in holdout]
    kept.sort(key=lambda r: hashlib.sha256(str(r["id"]).encode()).hexdigest())
    return [{k: r.get(k) for k in FIELDS} for r in kept[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    records = demo_records(SHARED / TASKS["oqmd-ef"].file, read_holdout(HOLDOUT_FILE), args.n)
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    OUT.write_bytes(gzip.compress(text, mtime=0))  # mtime=0: the same records give the same bytes
    print(f"wrote {len(records)} records ({OUT.stat().st_size // 1024} KB) to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
