"""Clean a pretraining corpus and say exactly what was dropped, per source and reason.

Bad records never crash a load: loaders put parse failures into a :class:`CleaningReport`
(``strict=True`` raises :class:`RecordError` with the record id instead), and :func:`clean`
drops bad targets and samples into the same report.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # data.py imports this module; avoid the cycle at run time
    from ct_plugins.pretrain.data import Sample

# Reasons. "target" reasons drop one target; the others drop the whole record.
NONFINITE_TARGET = "nonfinite_target"  # NaN / inf value: that target is dropped
OUT_OF_BOUNDS = "out_of_bounds_target"  # outside `bounds` (OQMD has Ef = 25.4 eV/atom)
UNLABELLED = "unlabelled"  # no target in the source record (OQMD nulls)
NO_TARGET_LEFT = "no_target_left"  # every target was dropped above
UNPARSABLE_STRUCTURE = "unparsable_structure"  # malformed CIF / POSCAR / jarvis atoms
UNPARSABLE_FORMULA = "unparsable_formula"
UNKNOWN_ELEMENT = "unknown_element"  # outside H..Fm (Z 1..100), e.g. "D" or "X"
EMPTY_STRUCTURE = "empty_structure"
DUPLICATE_ID = "duplicate_id"  # a second record with an id already loaded (the first is kept)
TOO_MANY_ATOMS = "too_many_atoms"  # more tokens than max_atoms
EXCLUDED_FORMULA = "excluded_formula"  # a downstream task's formula (leakage guard)

# Physical ranges: MP's lowest real formation energies are fluorides near -4.5 eV/atom (it also
# has 4 broken entries down to -13.6), OQMD has up to +25.4; the widest real PBE gaps are ~9 eV
# (LiF, CF4) and MP's solid He (16.6 eV) is no useful chemistry for a crystal embedding.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {"ef": (-5.0, 5.0), "eg": (0.0, 12.0)}
# 64 tokens: 98.5% of MP reduced formulas (1,363 of 91,485 are longer) and every perovskite
# cell; attention cost grows with the square of the longest sequence in a batch.
DEFAULT_MAX_ATOMS = 64
MAX_EXAMPLES = 5
Event = tuple[str, str, str, str]  # (source, reason, record id, detail)


class RecordError(ValueError):
    """A bad input record, raised only in strict mode (otherwise it goes into the report)."""

    def __init__(self, record_id: str, reason: str, message: str) -> None:
        super().__init__(f"record {record_id!r}: {reason}: {message}")
        self.record_id = record_id
        self.reason = reason


@dataclass
class CleaningReport:
    """What a load + clean kept and dropped: counts per source and reason, example ids."""

    events: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    kept: Counter = field(default_factory=Counter)
    strict: bool = False
    log: list[Event] = field(default_factory=list, repr=False)  # every event, in order
    files: dict[str, str] = field(default_factory=dict)  # every data file read -> its sha256

    def read_file(self, path: Path) -> None:
        """Record a data file about to be read (provenance: which bytes made the corpus)."""
        from ct_plugins.files import file_sha256

        self.files[str(path)] = file_sha256(path)

    @property
    def last_file(self) -> str | None:
        """The file read most recently: the one a read error came from."""
        return next(reversed(self.files), None)

    def add(self, source: str, reason: str, record_id: str, detail: str = "") -> None:
        """Record one dropped record or target; raises in strict mode."""
        if self.strict:
            raise RecordError(record_id, reason, detail or "rejected")
        self.log.append((source, reason, record_id, detail))
        self.events[source][reason] += 1
        if len(self.examples[reason]) < MAX_EXAMPLES:
            self.examples[reason].append(f"{source}:{record_id}" + (f" ({detail})" if detail else ""))

    def replay(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(*event)

    def set_kept(self, samples: Iterable[Sample]) -> None:
        self.kept = Counter(sample.source for sample in samples)

    @property
    def counts(self) -> Counter:
        """Events per reason, summed over sources."""
        total: Counter = Counter()
        for per_reason in self.events.values():
            total.update(per_reason)
        return total

    @property
    def kept_count(self) -> int:
        return sum(self.kept.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": dict(self.kept),
            "kept_total": self.kept_count,
            "dropped": {source: dict(per_reason) for source, per_reason in self.events.items()},
            "dropped_total": dict(self.counts),
            "examples": dict(self.examples),
            "files": dict(self.files),
        }

    def summary(self) -> str:
        sources = sorted(set(self.kept) | set(self.events))
        lines = [f"kept {self.kept_count} samples"]
        for source in sources:
            events = ", ".join(f"{r} {n}" for r, n in sorted(self.events.get(source, {}).items()))
            lines.append(f"  {source}: kept {self.kept.get(source, 0)}" + (f"; {events}" if events else ""))
        for reason, ids in sorted(self.examples.items()):
            lines.append(f"  e.g. {reason}: {', '.join(ids)}")
        return "\n".join(lines)


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
    / ``atoms`` and a ``targets`` mapping; see :func:`ct_plugins.pretrain.data.sample_from_record`).
    An out-of-bounds target drops the whole sample by default: a wildly wrong formation energy
    marks a broken calculation, so its band gap is not trusted either.
    """
    from ct_plugins.pretrain.data import Sample, sample_from_record

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
