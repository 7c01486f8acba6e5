"""What a corpus load dropped and why: reasons, per-source counts and example ids.

Bad records never crash a load: loaders put parse failures into a :class:`CleaningReport`
(``strict=True`` raises :class:`RecordError` with the record id instead).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ct_plugins.pretrain.samples import Sample

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
