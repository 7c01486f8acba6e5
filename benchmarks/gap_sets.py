"""Why band gaps transfer on some sets and not others: how the gap data of each set differ.

    .venv/bin/python -m benchmarks.gap_sets [--json benchmarks/results/gap_sets.json]

For MP structures, MP compositions, OQMD and CMR perovskites: the number of gaps, the share of
zero gaps (metals), the spread of the non-zero gaps, and, for reduced formulas two sets share,
how far their gaps disagree (same functional or not). A table pretrained on MP PBE gaps can
only carry what the downstream set's labels share with MP's.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.downstream import SHARED, reduced_formula
from ct_plugins.pretrain.targets import METAL_GAP_EV

SETS = {  # name -> (file under ../shared/data, gap field, functional)
    "mp_structures": ("mp_structures/mp_2018_structures.jsonl.gz", "band_gap", "PBE"),
    "mp_compositions": ("mp_compositions/mp_gap.csv.gz", "target", "PBE"),
    "oqmd": ("perovskites/oqmd_perovskites.jsonl.gz", "band_gap", "PBE"),
    "cmr": ("perovskites/cmr_perovskites.jsonl.gz", "band_gap", "GLLB-SC"),
}
METAL = METAL_GAP_EV  # eV: a gap at or below this counts as zero (metal), as for the CT's metal target


def gaps_by_formula(path: Path, field: str) -> dict[str, float]:
    """Mean gap per reduced formula (polymorphs averaged), unlabelled records skipped."""
    values: dict[str, list[float]] = {}
    for formula, value in _rows(path, field):
        if value is not None:
            values.setdefault(reduced_formula(formula), []).append(float(value))
    return {f: float(np.mean(v)) for f, v in values.items()}


def _rows(path: Path, field: str):
    with gzip.open(path, "rt") as handle:
        if path.name.endswith(".csv.gz"):
            yield from ((row["formula"], row[field] or None) for row in csv.DictReader(handle))
        else:
            yield from ((r["formula"], r.get(field)) for r in map(json.loads, filter(str.strip, handle)))


def describe(gaps: dict[str, float], functional: str) -> dict:
    values = np.array(list(gaps.values()))
    nonzero = values[values > METAL]
    return {"functional": functional, "formulas": len(values), "zero_share": float(np.mean(values <= METAL)),
            "nonzero_mean": float(nonzero.mean()), "nonzero_median": float(np.median(nonzero)),
            "nonzero_std": float(nonzero.std())}


def agreement(a: dict[str, float], b: dict[str, float]) -> dict:
    """How the gaps of two sets differ on their shared formulas."""
    shared = sorted(set(a) & set(b))
    if len(shared) < 10:
        return {"shared_formulas": len(shared)}
    x, y = np.array([a[f] for f in shared]), np.array([b[f] for f in shared])
    return {"shared_formulas": len(shared), "mae": float(np.mean(np.abs(x - y))),
            "mean_difference": float(np.mean(y - x)), "pearson_r": float(np.corrcoef(x, y)[0, 1]),
            "metal_agreement": float(np.mean((x <= METAL) == (y <= METAL)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    gaps = {name: gaps_by_formula(SHARED / file, field) for name, (file, field, _) in SETS.items()}
    result = {
        "sets": {name: describe(gaps[name], SETS[name][2]) for name in SETS},
        "pairs": {f"{a} vs {b}": agreement(gaps[a], gaps[b])
                  for i, a in enumerate(SETS) for b in list(SETS)[i + 1:]},
    }
    for name, row in result["sets"].items():
        print(f"{name:16s} {row['functional']:8s} {row['formulas']:6d} formulas, zero gaps {row['zero_share']:.0%}, "
              f"non-zero median {row['nonzero_median']:.2f} eV (std {row['nonzero_std']:.2f})")
    for pair, row in result["pairs"].items():
        detail = (f": MAE {row['mae']:.2f} eV, mean shift {row['mean_difference']:+.2f} eV, r {row['pearson_r']:.2f}, "
                  f"metal/non-metal agree {row['metal_agreement']:.0%}") if "mae" in row else ""
        print(f"{pair:34s} {row['shared_formulas']:5d} shared formulas{detail}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
