"""The pretraining corpus: named sources (``SOURCES``), user files, cleaning and the leakage guard."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ct_plugins.files import open_text
from ct_plugins.pretrain.cleaning import DEFAULT_BOUNDS, DEFAULT_MAX_ATOMS, clean
from ct_plugins.pretrain.cleaning_report import EXCLUDED_FORMULA, CleaningReport
from ct_plugins.pretrain.compositions import composition_samples, composition_table_samples
from ct_plugins.pretrain.formulas import normalize_formula
from ct_plugins.pretrain.jarvis_datasets import JARVIS_DATASETS, jarvis_online_samples
from ct_plugins.pretrain.samples import Sample
from ct_plugins.pretrain.structure_files import structure_samples
from ct_plugins.pretrain.targets import DERIVED_FROM, data_targets

DATA_ENV = "CT_PLUGINS_DATA"  # overrides ../shared/data
OQMD_TARGETS = {"ef": "formation_energy_per_atom", "eg": "band_gap"}
MP_STRUCTURE_TARGETS = {"ef": "formation_energy_per_atom", "eg": "band_gap"}  # MP 2018, PBE
CMR_TARGETS = {"ef": "heat_of_formation_per_cell", "eg": "band_gap"}  # ef is per 5-atom cell


def exclude_formulas(
    samples: Iterable[Sample], formulas: Iterable[str], *, report: CleaningReport | None = None
) -> list[Sample]:
    """Samples whose reduced formula is not in ``formulas`` (any formula spelling is accepted)."""
    banned = {normalize_formula(f) for f in formulas}
    kept = []
    for sample in samples:
        if sample.formula not in banned:
            kept.append(sample)
        elif report is not None:
            report.add(sample.source, EXCLUDED_FORMULA, sample.id, sample.formula)
    return kept


def shared_data_dir() -> Path:
    """``$CT_PLUGINS_DATA``, else ``../shared/data`` next to the project (or the working dir)."""
    candidates = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    project = Path(__file__).resolve().parents[1]  # the repo root in an editable install
    candidates += [project.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "shared data folder not found (looked in: " + ", ".join(map(str, candidates)) + "). "
        f"Put the data in ../shared/data relative to the project or set {DATA_ENV}."
    )


@dataclass
class CorpusSpec:
    """Which sources make the pretraining corpus and how they are cleaned."""

    sources: tuple[str, ...] = ("mp_compositions", "oqmd", "cmr")  # SOURCES, ALIASES or file paths
    data_dir: Path | None = None  # default: shared_data_dir()
    exclude: frozenset[str] = frozenset()  # downstream formulas to keep out (leakage guard)
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    max_atoms: int = DEFAULT_MAX_ATOMS
    drop_sample_on_outlier: bool = True
    targets: tuple[str, ...] = ("ef", "eg")  # derived ones (metal) read their data label (eg)
    split_file: Path | None = None  # jarvis sources: keep only the split's `split_parts`
    split_parts: tuple[str, ...] = ("train",)
    cache: bool = True
    workers: int | None = 1  # CIF parsing processes; None = one per core (see parse_structures)
    progress: bool = True
    strict: bool = False


def _required(path: Path, report: CleaningReport) -> Path:
    """The file, recorded with its sha256 in the report (provenance); missing: a clear error."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: offline corpora are read from the shared data folder "
            f"(../shared/data, see its README.md); point CorpusSpec.data_dir / --data-root or {DATA_ENV} at it"
        )
    report.read_file(path)
    return path


def _mp_compositions(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
    folder = root / "mp_compositions"
    ef = _required(folder / "mp_e_form.csv.gz", report) if "ef" in spec.targets else None
    eg = _required(folder / "mp_gap.csv.gz", report) if "eg" in spec.targets else None
    return composition_samples(ef, eg, report=report, cache=spec.cache, progress=spec.progress)


def _perovskites(name: str, target_keys: Mapping[str, str], per_cell: Collection[str] = ()):
    def load(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
        keys = {k: v for k, v in target_keys.items() if k in spec.targets}
        path = _required(root / "perovskites" / f"{name}_perovskites.jsonl.gz", report)
        return structure_samples(path, keys, source=name, per_cell=per_cell, report=report,
                                 cache=spec.cache, workers=spec.workers, progress=spec.progress)

    return load


def _mp_structures(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
    keys = {k: v for k, v in MP_STRUCTURE_TARGETS.items() if k in spec.targets}
    path = _required(root / "mp_structures" / "mp_2018_structures.jsonl.gz", report)
    return structure_samples(path, keys, source="mp_structures", report=report, cache=spec.cache,
                             workers=spec.workers, progress=spec.progress)


def _jarvis(dataset: str):
    def load(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
        keys = {k: v for k, v in JARVIS_DATASETS[dataset][1].items() if k in spec.targets}
        return jarvis_online_samples(dataset, spec.split_file, parts=spec.split_parts, target_keys=keys,
                                     report=report, progress=spec.progress)

    return load


def file_samples(path: Path, spec: CorpusSpec, report: CleaningReport) -> list[Sample]:
    """A user's own corpus file; its source name is the file name without extensions.

    ``.csv[.gz]``: a ``formula`` column plus target columns named like the targets (``ef``,
    ``eg``): compositions. ``.jsonl[.gz]``: records with ``id``, ``cif`` and targets named
    ``ef`` / ``eg`` or as in OQMD (``formation_energy_per_atom``, ``band_gap``): structures.
    """
    source = path.name.split(".")[0]
    stem = path.name.removesuffix(".gz")
    _required(path, report)
    if stem.endswith(".csv"):
        return composition_table_samples([(path, {t: t for t in spec.targets})], source=source, report=report,
                                         cache=spec.cache, progress=spec.progress)
    if stem.endswith(".jsonl"):
        with open_text(path) as handle:
            first = json.loads(handle.readline() or "{}")
        keys = {t: t if t in first else OQMD_TARGETS.get(t, t) for t in spec.targets}
        return structure_samples(path, keys, source=source, report=report, cache=spec.cache,
                                 workers=spec.workers, progress=spec.progress)
    raise ValueError(f"{path}: corpus files must be .csv or .jsonl (optionally .gz)")


SourceLoader = Callable[[CorpusSpec, Path, CleaningReport], list[Sample]]
SOURCES: dict[str, SourceLoader] = {
    "mp_compositions": _mp_compositions,
    "mp_structures": _mp_structures,
    "oqmd": _perovskites("oqmd", OQMD_TARGETS),
    "cmr": _perovskites("cmr", CMR_TARGETS, per_cell=("ef",)),
    "jarvis_megnet": _jarvis("megnet"),
    "jarvis_dft_3d": _jarvis("dft_3d"),
}
ALIASES = {"mp": "mp_compositions", "megnet": "jarvis_megnet", "dft_3d": "jarvis_dft_3d"}
SOURCE_LABELS = ("ef", "eg")  # what every SOURCES loader can label (a user file: its own columns)


def unknown_targets(sources: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Targets that no source can provide, known before reading any data: only when every
    source is built in (a user's .csv/.jsonl file may carry any column)."""
    if any(ALIASES.get(s, s) not in SOURCES for s in sources):
        return []
    return [t for t in targets if t not in SOURCE_LABELS and t not in DERIVED_FROM]


def build_corpus(
    spec: CorpusSpec | None = None, report: CleaningReport | None = None
) -> tuple[list[Sample], CleaningReport]:
    """Load, clean and leakage-filter the corpus; the report says what was dropped and why
    (pass your own ``report`` to see which file was being read when a load fails)."""
    spec = spec or CorpusSpec()
    spec = replace(spec, targets=data_targets(spec.targets))
    names = [ALIASES.get(s, s) for s in spec.sources]
    unknown = [s for s in names if s not in SOURCES and not Path(s).is_file()]
    if unknown:
        raise ValueError(f"unknown corpus sources {unknown}; known: {', '.join([*SOURCES, *ALIASES])} "
                         "or a .csv / .jsonl file")
    shared = [s for s in names if s in SOURCES and not s.startswith("jarvis_")]
    root = Path(spec.data_dir) if spec.data_dir else (shared_data_dir() if shared else Path("."))
    report = report if report is not None else CleaningReport(strict=spec.strict)
    report.strict = report.strict or spec.strict  # a passed report must not soften a strict spec
    raw: list[Sample] = []
    for name in names:
        raw += SOURCES[name](spec, root, report) if name in SOURCES else file_samples(Path(name), spec, report)
    samples, report = clean(raw, spec.bounds, max_atoms=spec.max_atoms,
                            drop_sample_on_outlier=spec.drop_sample_on_outlier, report=report)
    if spec.exclude:
        samples = exclude_formulas(samples, spec.exclude, report=report)
        report.set_kept(samples)
    return samples, report
