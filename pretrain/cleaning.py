"""Clean a pretraining corpus: drop bad targets and samples into a :class:`CleaningReport`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ct_plugins.pretrain.cleaning_report import (
    EMPTY_STRUCTURE,
    NO_TARGET_LEFT,
    NONFINITE_TARGET,
    OUT_OF_BOUNDS,
    TOO_MANY_ATOMS,
    UNKNOWN_ELEMENT,
    UNLABELLED,
    CleaningReport,
)
from ct_plugins.pretrain.samples import Sample
from ct_plugins.pretrain.structures import sample_from_record

# Physical ranges: MP's lowest real formation energies are fluorides near -4.5 eV/atom (it also
# has 4 broken entries down to -13.6), OQMD has up to +25.4; the widest real PBE gaps are ~9 eV
# (LiF, CF4) and MP's solid He (16.6 eV) is no useful chemistry for a crystal embedding.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {"ef": (-5.0, 5.0), "eg": (0.0, 12.0)}
# 64 tokens: 98.5% of MP reduced formulas (1,363 of 91,485 are longer) and every perovskite
# cell; attention cost grows with the square of the longest sequence in a batch.
DEFAULT_MAX_ATOMS = 64


def clean(
    samples_or_raw_records: Iterable[Sample | Mapping[str, Any]],
    bounds: Mapping[str, tuple[float, float]] | None = None,
    *,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    drop_sample_on_outlier: bool = True,
    report: CleaningReport | None = None,
    strict: bool = False,
) -> tuple[list[Sample], CleaningReport]:
    """Keep the usable samples; everything dropped is counted in the returned report.

    Items are :class:`Sample` or raw records (mappings with ``id``, one of ``cif`` / ``poscar``
    / ``atoms`` and a ``targets`` mapping; see :func:`ct_plugins.pretrain.structures.sample_from_record`).
    An out-of-bounds target drops the whole sample by default: a wildly wrong formation energy
    marks a broken calculation, so its band gap is not trusted either.
    """
    bounds = DEFAULT_BOUNDS if bounds is None else bounds
    report = report if report is not None else CleaningReport(strict=strict)
    kept: list[Sample] = []
    for item in samples_or_raw_records:
        sample = item if isinstance(item, Sample) else sample_from_record(item, report=report)
        if sample is not None and _structure_ok(sample, max_atoms, report):
            sample = _clean_targets(sample, bounds, drop_sample_on_outlier, report)
            if sample is not None:
                kept.append(sample)
    report.set_kept(kept)
    return kept, report


def _structure_ok(sample: Sample, max_atoms: int, report: CleaningReport) -> bool:
    n = len(sample.z)
    if n == 0:
        report.add(sample.source, EMPTY_STRUCTURE, sample.id)
    elif sample.z.min() < 1 or sample.z.max() > 100:
        report.add(sample.source, UNKNOWN_ELEMENT, sample.id, f"Z {sample.z.min()}..{sample.z.max()}")
    elif n > max_atoms:
        report.add(sample.source, TOO_MANY_ATOMS, sample.id, f"{n} > {max_atoms}")
    else:
        return True
    return False


def _clean_targets(
    sample: Sample,
    bounds: Mapping[str, tuple[float, float]],
    drop_sample_on_outlier: bool,
    report: CleaningReport,
) -> Sample | None:
    if not sample.targets:
        report.add(sample.source, UNLABELLED, sample.id)
        return None
    targets: dict[str, float] = {}
    for name, value in sample.targets.items():
        low, high = bounds.get(name, (-math.inf, math.inf))
        if not math.isfinite(value):
            report.add(sample.source, NONFINITE_TARGET, sample.id, f"{name}={value}")
        elif not low <= value <= high:
            report.add(sample.source, OUT_OF_BOUNDS, sample.id, f"{name}={value:g}")
            if drop_sample_on_outlier:
                return None
        else:
            targets[name] = float(value)
    if not targets:
        report.add(sample.source, NO_TARGET_LEFT, sample.id)
        return None
    return sample if targets == sample.targets else replace(sample, targets=targets)
