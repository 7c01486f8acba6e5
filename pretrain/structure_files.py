"""Structure-mode samples from JSON-lines files of records with a CIF (OQMD, CMR, user files)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

from ct_plugins.files import open_text
from ct_plugins.pretrain.cleaning_report import DUPLICATE_ID, CleaningReport
from ct_plugins.pretrain.formulas import formula_of_atomic_numbers
from ct_plugins.pretrain.sample_cache import cache_key, cached_samples
from ct_plugins.pretrain.samples import Sample, target_value
from ct_plugins.pretrain.structure_parsing import parse_structures
from ct_plugins.pretrain.structures import StructureFormat


def read_jsonl(path: Path) -> list[dict]:
    with open_text(Path(path)) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def structure_samples(
    jsonl_gz: Path,
    target_keys: Mapping[str, str],
    *,
    source: str | None = None,
    per_cell: Collection[str] = (),
    structure_field: str = "cif",
    fmt: StructureFormat = "cif",
    report: CleaningReport | None = None,
    cache: bool = True,
    workers: int | None = 1,
    progress: bool = True,
) -> list[Sample]:
    """Structure records (JSON lines with ``id``, a CIF and target fields) -> samples.

    ``target_keys`` maps our target names to record fields; targets named in ``per_cell`` are
    per cell in the file and divided by the number of atoms of the parsed cell (CMR's
    ``heat_of_formation_per_cell``). Parse failures go into ``report``. Results are cached
    keyed by the file's sha256 (see :mod:`ct_plugins.pretrain.sample_cache`).
    """
    path = Path(jsonl_gz)
    source = source or path.name.split("_")[0]
    report = report if report is not None else CleaningReport()

    def build(events: CleaningReport) -> list[Sample]:
        records: dict[str, dict] = {}
        for record in read_jsonl(path):
            record_id = str(record.get("id"))
            if record_id in records:  # keep the first; a silent overwrite would lose a record
                events.add(source, DUPLICATE_ID, record_id)
            else:
                records[record_id] = record
        items = [(record_id, r.get(structure_field) or "", fmt) for record_id, r in records.items()]
        samples = []
        for record_id, result in parse_structures(items, workers=workers, progress=progress, desc=path.name):
            if isinstance(result[0], str):
                events.add(source, result[0], record_id, result[1])
                continue
            z, coords, lattice = result
            targets = _record_targets(records[record_id], target_keys, per_cell, len(z))
            formula = formula_of_atomic_numbers(z) if len(z) else ""
            samples.append(Sample(record_id, source, formula, z, coords, lattice, targets))
        return samples

    key = cache_key([path], "structures", source, sorted(target_keys.items()), sorted(per_cell), structure_field, fmt)
    return cached_samples(key, build, report, enabled=cache)


def _record_targets(record: Mapping, target_keys: Mapping[str, str], per_cell: Collection[str], n: int):
    targets = {}
    for name, key in target_keys.items():
        value = target_value(record.get(key))
        if value is not None:
            targets[name] = value / max(n, 1) if name in per_cell else value
    return targets
