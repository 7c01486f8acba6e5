"""Composition-mode samples: formulas (MP compositions and user CSVs), no coordinates."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ct_plugins.elements import UnknownElementError
from ct_plugins.files import open_text
from ct_plugins.pretrain.cleaning_report import (
    NONFINITE_TARGET,
    UNKNOWN_ELEMENT,
    UNLABELLED,
    UNPARSABLE_FORMULA,
    CleaningReport,
)
from ct_plugins.pretrain.formulas import Counts, formula_of_counts, reduced_counts, tokens_of_counts
from ct_plugins.pretrain.sample_cache import cache_key, cached_samples
from ct_plugins.pretrain.samples import Sample, target_value


def composition_sample(formula: str, targets: Mapping[str, float], source: str = "user") -> Sample:
    """A composition-mode sample: the atoms of the reduced formula, no coordinates."""
    counts = reduced_counts(formula)
    reduced = formula_of_counts(counts)
    return Sample(reduced, source, reduced, tokens_of_counts(counts), None, None, dict(targets))


def composition_samples(
    ef_csv: Path | None,
    eg_csv: Path | None = None,
    *,
    source: str = "mp_compositions",
    report: CleaningReport | None = None,
    cache: bool = True,
    progress: bool = True,
) -> list[Sample]:
    """MP compositions (``formula,target`` CSVs) merged by reduced formula, polymorphs averaged.

    Formulas that do not parse or hold unknown elements go into ``report`` (or raise in a
    strict report); non-finite values are left out of the average and reported. Results are
    cached (see :mod:`ct_plugins.pretrain.sample_cache`).
    """
    tables = [(Path(path), {name: "target"}) for name, path in (("ef", ef_csv), ("eg", eg_csv)) if path is not None]
    return composition_table_samples(tables, source=source, report=report, cache=cache, progress=progress)


def composition_table_samples(
    tables: Sequence[tuple[Path, Mapping[str, str]]],
    *,
    source: str,
    report: CleaningReport | None = None,
    cache: bool = True,
    progress: bool = True,
) -> list[Sample]:
    """Samples from CSV files with a ``formula`` column; ``tables`` pairs each file with a map
    from our target names to its columns. Merged by reduced formula, polymorphs averaged."""
    report = report if report is not None else CleaningReport()

    def build(events: CleaningReport) -> list[Sample]:
        values: dict[Counts, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for path, columns in tables:
            _collect_csv_targets(path, columns, source, values, events, progress)
        samples = []
        for counts, per_target in values.items():
            formula = formula_of_counts(counts)
            targets = {name: float(np.mean(v)) for name, v in per_target.items() if v}
            samples.append(Sample(formula, source, formula, tokens_of_counts(counts), None, None, targets))
        return samples

    key = cache_key([path for path, _ in tables], "compositions", source, [sorted(c.items()) for _, c in tables])
    return cached_samples(key, build, report, enabled=cache)


def _collect_csv_targets(path: Path, columns: Mapping[str, str], source, values, report, progress) -> None:
    from tqdm.auto import tqdm

    with open_text(path) as handle:
        rows = list(csv.DictReader(handle))
    for line, row in enumerate(tqdm(rows, desc=f"{path.name}", disable=not progress, leave=False), 2):
        record_id = f"{path.name}:{line}:{row.get('formula')}"
        try:
            counts = reduced_counts(str(row.get("formula") or ""))
        except UnknownElementError as error:
            report.add(source, UNKNOWN_ELEMENT, record_id, str(error))
            continue
        except Exception as error:  # pymatgen raises several types for malformed formulas
            report.add(source, UNPARSABLE_FORMULA, record_id, f"{type(error).__name__}: {error}")
            continue
        for name, column in columns.items():
            value = target_value(row.get(column))
            if value is None:
                report.add(source, UNLABELLED, record_id, name)
            elif not math.isfinite(value):
                report.add(source, NONFINITE_TARGET, record_id, f"{name}={value}")
            else:
                values[counts][name].append(value)
