"""Pretraining data: compositions and crystal structures as token sequences (:class:`Sample`).

Token order (both modes): atoms sorted by ascending Pauling electronegativity, ties and
elements without one (He, Ne, Ar) by Z, stable within an element. The model reads out token 0,
so the order must be deterministic and chemically consistent: token 0 is then always the most
electropositive element (the cation written first in a formula, the A/B site of a perovskite,
the metal of an oxide), and composition and structure samples of one compound start alike.
This is also the element order of pymatgen's reduced formulas: Fe2O3 -> z = [26, 26, 8, 8, 8].
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import logging
import math
import multiprocessing
import os
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ct_plugins.elements import MAX_Z, SYMBOLS, UnknownElementError, atomic_number
from ct_plugins.pretrain.cleaning import (
    DEFAULT_BOUNDS,
    DEFAULT_MAX_ATOMS,
    DUPLICATE_ID,
    EXCLUDED_FORMULA,
    NONFINITE_TARGET,
    UNKNOWN_ELEMENT,
    UNLABELLED,
    UNPARSABLE_FORMULA,
    UNPARSABLE_STRUCTURE,
    CleaningReport,
    clean,
)
from ct_plugins.pretrain.sample_cache import cache_key, cached_samples

if TYPE_CHECKING:
    from pymatgen.core import Structure

log = logging.getLogger(__name__)

DATA_ENV = "CT_PLUGINS_DATA"  # overrides ../shared/data
StructureFormat = Literal["cif", "poscar"]

OQMD_TARGETS = {"ef": "formation_energy_per_atom", "eg": "band_gap"}
MP_STRUCTURE_TARGETS = {"ef": "formation_energy_per_atom", "eg": "band_gap"}  # MP 2018, PBE
CMR_TARGETS = {"ef": "heat_of_formation_per_cell", "eg": "band_gap"}  # ef is per 5-atom cell
JARVIS_DATASETS: dict[str, tuple[str, dict[str, str]]] = {  # dataset -> (id field, targets)
    "megnet": ("id", {"ef": "e_form", "eg": "gap pbe"}),
    "dft_3d": ("jid", {"ef": "formation_energy_peratom", "eg": "optb88vdw_bandgap"}),
}


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields make == ambiguous
class Sample:
    """One pretraining example. Composition mode has ``coords is None and lattice is None``."""

    id: str
    source: str  # "mp_compositions", "oqmd", "cmr", "jarvis_megnet", "jarvis_dft_3d", ...
    formula: str  # reduced formula (pymatgen convention)
    z: np.ndarray  # int64 (n,), 1..100, in token order (see module doc)
    coords: np.ndarray | None  # float32 (n, 3) Cartesian, Å
    lattice: np.ndarray | None  # float32 (3, 3), rows are lattice vectors, Å
    targets: dict[str, float] = field(default_factory=dict)  # "ef" eV/atom, "eg" eV

    @property
    def is_composition(self) -> bool:
        return self.coords is None

    @property
    def n_atoms(self) -> int:
        return len(self.z)


class StructureParseError(ValueError):
    """A CIF / POSCAR / jarvis record that cannot be turned into a structure."""


# ---------------------------------------------------------------- elements, token order


@functools.cache
def _order_rank() -> np.ndarray:
    """rank[Z] = position of element Z in token order (ascending electronegativity, then Z)."""
    import warnings

    from pymatgen.core.periodic_table import Element

    def key(z: int) -> tuple[float, int]:
        with warnings.catch_warnings():  # pymatgen warns for noble gases without X
            warnings.simplefilter("ignore")
            x = Element(SYMBOLS[z - 1]).X
        return (x if math.isfinite(x) else math.inf, z)

    order = sorted(range(1, MAX_Z + 1), key=key)
    rank = np.full(MAX_Z + 1, MAX_Z + 1, dtype=np.int64)  # index 0 unused
    rank[order] = np.arange(len(order))
    return rank


def token_order(z: np.ndarray) -> np.ndarray:
    """Stable permutation that puts atomic numbers into token order."""
    return np.argsort(_order_rank()[np.asarray(z)], kind="stable")


def _atomic_numbers(symbols: Iterable[str]) -> np.ndarray:
    return np.array([atomic_number(s) for s in symbols], dtype=np.int64)


Counts = tuple[tuple[int, int], ...]  # ((Z, count), ...) sorted by Z, reduced by the gcd
_SIMPLE_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_ELEMENT_AMOUNT = re.compile(r"([A-Z][a-z]?)(\d*)")


def _reduced_counts(formula: str) -> Counts:
    """Reduced integer element counts of a formula; raises on unknown elements / bad formulas.

    Plain formulas (``Mn4O16P4``, all of matbench) take a regex fast path; anything else
    (brackets, fractions) goes through pymatgen.
    """
    amounts: dict[int, float] = defaultdict(float)
    if _SIMPLE_FORMULA.fullmatch(formula):
        for element, amount in _ELEMENT_AMOUNT.findall(formula):
            amounts[atomic_number(element)] += int(amount or 1)
    else:
        from pymatgen.core import Composition

        for element, amount in Composition(formula).get_el_amt_dict().items():
            amounts[atomic_number(element)] += amount
    return _reduce(amounts, formula)


def _reduce(amounts: Mapping[int, float], formula: str) -> Counts:
    if not amounts or any(a <= 0 for a in amounts.values()):
        raise ValueError(f"no positive element amounts in formula {formula!r}")
    if any(abs(a - round(a)) > 1e-6 for a in amounts.values()):
        raise ValueError(f"non-integer element amounts in formula {formula!r}")
    ints = {z: round(a) for z, a in amounts.items()}
    divisor = math.gcd(*ints.values())
    return tuple(sorted((z, n // divisor) for z, n in ints.items()))


def _counts_of_z(z: np.ndarray) -> Counts:
    values, counts = np.unique(np.asarray(z), return_counts=True)
    return _reduce(dict(zip(values.tolist(), counts.tolist())), "structure")


@functools.lru_cache(maxsize=None)
def _formula_of_counts(counts: Counts) -> str:
    """pymatgen's reduced formula string (it also groups polyanions: ``Fe3H28(S2O15)2``)."""
    from pymatgen.core import Composition

    return Composition({SYMBOLS[z - 1]: n for z, n in counts}).reduced_formula


def _tokens_of_counts(counts: Counts) -> np.ndarray:
    z = np.repeat(np.array([c[0] for c in counts], dtype=np.int64), [c[1] for c in counts])
    return z[token_order(z)]


def reduced_formula(z: np.ndarray) -> str:
    """Reduced formula (pymatgen convention) of a list of atomic numbers."""
    return _formula_of_counts(_counts_of_z(z))


def normalize_formula(formula: str) -> str:
    """Reduced formula in pymatgen's convention (``"O6Fe4"`` -> ``"Fe2O3"``)."""
    return _formula_of_counts(_reduced_counts(formula))


# ---------------------------------------------------------------- compositions


def composition_sample(formula: str, targets: Mapping[str, float], source: str = "user") -> Sample:
    """A composition-mode sample: the atoms of the reduced formula, no coordinates."""
    counts = _reduced_counts(formula)
    reduced = _formula_of_counts(counts)
    return Sample(reduced, source, reduced, _tokens_of_counts(counts), None, None, dict(targets))


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
            formula = _formula_of_counts(counts)
            targets = {name: float(np.mean(v)) for name, v in per_target.items() if v}
            samples.append(Sample(formula, source, formula, _tokens_of_counts(counts), None, None, targets))
        return samples

    key = cache_key([path for path, _ in tables], "compositions", source, [sorted(c.items()) for _, c in tables])
    return cached_samples(key, build, report, enabled=cache)


def _collect_csv_targets(path: Path, columns: Mapping[str, str], source, values, report, progress) -> None:
    from tqdm.auto import tqdm

    with _open_text(path) as handle:
        rows = list(csv.DictReader(handle))
    for line, row in enumerate(tqdm(rows, desc=f"{path.name}", disable=not progress, leave=False), 2):
        record_id = f"{path.name}:{line}:{row.get('formula')}"
        try:
            counts = _reduced_counts(str(row.get("formula") or ""))
        except UnknownElementError as error:
            report.add(source, UNKNOWN_ELEMENT, record_id, str(error))
            continue
        except Exception as error:  # pymatgen raises several types for malformed formulas
            report.add(source, UNPARSABLE_FORMULA, record_id, f"{type(error).__name__}: {error}")
            continue
        for name, column in columns.items():
            value = _as_float(row.get(column))
            if value is None:
                report.add(source, UNLABELLED, record_id, name)
            elif not math.isfinite(value):
                report.add(source, NONFINITE_TARGET, record_id, f"{name}={value}")
            else:
                values[counts][name].append(value)


def _as_float(value: Any) -> float | None:
    """A target value, or None when missing (null, "", "na")."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


# ---------------------------------------------------------------- structures


def structure_from_text(text: str, fmt: StructureFormat = "cif") -> Structure:
    """A pymatgen Structure from CIF or POSCAR text; :class:`StructureParseError` if malformed."""
    import warnings

    from pymatgen.core import Structure

    if fmt not in ("cif", "poscar"):
        raise ValueError(f"unknown structure format {fmt!r}: expected 'cif' or 'poscar'")
    try:
        with warnings.catch_warnings():  # CifParser warns on every rounding fix; errors still raise
            warnings.simplefilter("ignore")
            return Structure.from_str(text, fmt=fmt)
    except Exception as error:
        raise StructureParseError(f"cannot parse {fmt}: {type(error).__name__}: {error}") from error


def _arrays_of(structure: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, Cartesian coords, lattice) of a pymatgen Structure or jarvis Atoms, in token order."""
    if hasattr(structure, "lattice_mat"):  # jarvis.core.atoms.Atoms
        symbols, coords, lattice = structure.elements, structure.cart_coords, structure.lattice_mat
    else:
        if not structure.is_ordered:
            raise StructureParseError("disordered structure (partial occupancies) is not supported")
        symbols = [site.specie.symbol for site in structure]
        coords, lattice = structure.cart_coords, structure.lattice.matrix
    z = _atomic_numbers(symbols)
    coords = np.asarray(coords, dtype=np.float32).reshape(-1, 3)
    order = token_order(z)
    return z[order], np.ascontiguousarray(coords[order]), np.asarray(lattice, dtype=np.float32).reshape(3, 3)


def sample_from_structure(
    structure: Any, *, id: str, source: str = "user", targets: Mapping[str, float] | None = None
) -> Sample:
    """A structure-mode sample from a pymatgen ``Structure`` or a jarvis ``Atoms``."""
    z, coords, lattice = _arrays_of(structure)
    return Sample(id, source, reduced_formula(z) if len(z) else "", z, coords, lattice, dict(targets or {}))


def to_structure(sample: Sample) -> Structure:
    """The pymatgen Structure of a structure-mode sample (for checks and upstream graph builders)."""
    from pymatgen.core import Lattice, Structure

    if sample.is_composition:
        raise ValueError(f"sample {sample.id!r} is a composition: it has no structure")
    return Structure(
        Lattice(np.asarray(sample.lattice, dtype=float)),
        [SYMBOLS[z - 1] for z in sample.z],
        np.asarray(sample.coords, dtype=float),
        coords_are_cartesian=True,
    )


def sample_from_record(record: Mapping[str, Any], *, report: CleaningReport | None = None) -> Sample | None:
    """A raw record -> Sample, or None (reason in ``report``; raises if the report is strict).

    The record has ``id``, optional ``source`` (default "user"), ``targets`` (name -> value,
    None = missing) and one structure field: ``cif`` or ``poscar`` (text) or ``atoms`` (a jarvis
    Atoms dict).
    """
    report = report if report is not None else CleaningReport()
    record_id, source = str(record.get("id", "?")), str(record.get("source", "user"))
    targets = {k: v for k, v in ((k, _as_float(v)) for k, v in record.get("targets", {}).items()) if v is not None}
    try:
        structure = _record_structure(record)
        return sample_from_structure(structure, id=record_id, source=source, targets=targets)
    except UnknownElementError as error:
        report.add(source, UNKNOWN_ELEMENT, record_id, str(error))
    except (StructureParseError, ValueError, KeyError, TypeError) as error:
        report.add(source, UNPARSABLE_STRUCTURE, record_id, f"{type(error).__name__}: {error}"[:200])
    return None


def _record_structure(record: Mapping[str, Any]) -> Any:
    if "atoms" in record:
        from jarvis.core.atoms import Atoms

        return Atoms.from_dict(record["atoms"])
    for fmt in ("cif", "poscar"):
        if fmt in record:
            return structure_from_text(record[fmt], fmt)  # type: ignore[arg-type]
    raise StructureParseError("record has no 'cif', 'poscar' or 'atoms' field")


# ---------------------------------------------------------------- parsing many structures


def _parse_one(item: tuple[str, str, str]) -> tuple[str, Any]:
    """Worker: (id, text, fmt) -> (id, (z, coords, lattice)) or (id, (reason, message))."""
    record_id, text, fmt = item
    try:
        return record_id, _arrays_of(structure_from_text(text, fmt))  # type: ignore[arg-type]
    except UnknownElementError as error:
        return record_id, (UNKNOWN_ELEMENT, str(error))
    except Exception as error:
        return record_id, (UNPARSABLE_STRUCTURE, f"{type(error).__name__}: {error}"[:200])


def parse_structures(
    items: Sequence[tuple[str, str, str]], *, workers: int | None = 1, progress: bool = True, desc: str = "parse"
) -> list[tuple[str, Any]]:
    """Parse (id, text, fmt) items, in ``workers`` processes (None: one per core).

    Returns (id, (z, coords, lattice)) or (id, (reason, message)) in input order. Processes are
    spawned (forking a process that already runs torch/OpenMP threads can deadlock), so a
    calling script needs the usual ``if __name__ == "__main__":`` guard; if the pool breaks,
    parsing falls back to this process. One process is the default: the load is cached anyway.
    """
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        if workers > 1:
            try:
                return _parse_in_processes(items, workers, bar)
            except BrokenProcessPool as error:
                log.warning("parallel parsing failed (%s); parsing in this process instead", error)
                bar.reset()
        results = []
        for item in items:
            results.append(_parse_one(item))
            bar.update()
        return results


def _parse_in_processes(items: Sequence[tuple[str, str, str]], workers: int, bar) -> list[tuple[str, Any]]:
    results = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        for result in pool.map(_parse_one, items, chunksize=256):
            results.append(result)
            bar.update()
    return results


def read_jsonl(path: Path) -> list[dict]:
    with _open_text(Path(path)) as handle:
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
            formula = reduced_formula(z) if len(z) else ""
            samples.append(Sample(record_id, source, formula, z, coords, lattice, targets))
        return samples

    key = cache_key([path], "structures", source, sorted(target_keys.items()), sorted(per_cell), structure_field, fmt)
    return cached_samples(key, build, report, enabled=cache)


def _record_targets(record: Mapping, target_keys: Mapping[str, str], per_cell: Collection[str], n: int):
    targets = {}
    for name, key in target_keys.items():
        value = _as_float(record.get(key))
        if value is not None:
            targets[name] = value / max(n, 1) if name in per_cell else value
    return targets


# ---------------------------------------------------------------- the real online path (jarvis)


def jarvis_online_samples(
    dataset: str = "megnet",
    split_file: Path | None = None,
    *,
    parts: Collection[str] = ("train",),
    target_keys: Mapping[str, str] | None = None,
    store_dir: Path | None = None,
    report: CleaningReport | None = None,
    progress: bool = True,
) -> list[Sample]:
    """Structures + targets from jarvis-tools' figshare datasets (needs network the first time).

    ``megnet`` is MP 2018.6.1 (e_form, gap pbe), ``dft_3d`` is JARVIS-DFT (OptB88vdW). With a
    ``split_file`` (e.g. ``splits/megnet_e_form.json.zip``) only ids in ``parts`` of the official
    split are kept: pretraining on ``train`` leaves the paper's val/test untouched.
    """
    import jarvis.db.figshare as figshare
    from tqdm.auto import tqdm

    if dataset not in JARVIS_DATASETS:
        raise ValueError(f"unknown jarvis dataset {dataset!r}; supported: {', '.join(JARVIS_DATASETS)}")
    id_field, default_targets = JARVIS_DATASETS[dataset]
    target_keys = target_keys or default_targets
    report = report if report is not None else CleaningReport()
    keep = _split_ids(split_file, parts) if split_file is not None else None
    source = f"jarvis_{dataset}"
    samples = []
    for entry in tqdm(figshare.data(dataset, store_dir=store_dir), desc=dataset, disable=not progress, leave=False):
        record_id = str(entry.get(id_field))
        if keep is not None and record_id not in keep:
            continue
        record = {"id": record_id, "source": source, "atoms": entry.get("atoms"),
                  "targets": {name: entry.get(key) for name, key in target_keys.items()}}
        sample = sample_from_record(record, report=report)
        if sample is not None:
            samples.append(sample)
    return samples


def paper_split(split_zip: Path) -> dict[str, list[str]]:
    """The official split (JARVIS-Leaderboard file): ``{"train": [ids], "val": [...], "test": [...]}``.

    For ``megnet_e_form.json.zip`` this is the paper's 60,000 / 5,000 / 4,239 MP split.
    """
    return {part: list(values) for part, values in read_split(split_zip).items()}


def read_split(split_zip: Path) -> dict[str, dict[str, Any]]:
    """A JARVIS-Leaderboard split file as stored: ``{part: {id: target}}`` (targets may be strings)."""
    with zipfile.ZipFile(split_zip) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")]
        if len(names) != 1:
            raise ValueError(f"{split_zip}: expected one .json file inside, found {names}")
        return json.loads(archive.read(names[0]))


def _split_ids(split_file: Path, parts: Collection[str]) -> set[str]:
    split = paper_split(split_file)
    unknown = set(parts) - set(split)
    if unknown:
        raise ValueError(f"{split_file} has parts {sorted(split)}, not {sorted(unknown)}")
    return {record_id for part in parts for record_id in split[part]}


# ---------------------------------------------------------------- leakage guard


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


# ---------------------------------------------------------------- the corpus


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
    targets: tuple[str, ...] = ("ef", "eg")
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
        with _open_text(path) as handle:
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


def build_corpus(
    spec: CorpusSpec | None = None, report: CleaningReport | None = None
) -> tuple[list[Sample], CleaningReport]:
    """Load, clean and leakage-filter the corpus; the report says what was dropped and why
    (pass your own ``report`` to see which file was being read when a load fails)."""
    spec = spec or CorpusSpec()
    names = [ALIASES.get(s, s) for s in spec.sources]
    unknown = [s for s in names if s not in SOURCES and not Path(s).is_file()]
    if unknown:
        raise ValueError(f"unknown corpus sources {unknown}; known: {', '.join([*SOURCES, *ALIASES])} "
                         "or a .csv / .jsonl file")
    shared = [s for s in names if s in SOURCES and not s.startswith("jarvis_")]
    root = Path(spec.data_dir) if spec.data_dir else (shared_data_dir() if shared else Path("."))
    report = report if report is not None else CleaningReport(strict=spec.strict)
    raw: list[Sample] = []
    for name in names:
        raw += SOURCES[name](spec, root, report) if name in SOURCES else file_samples(Path(name), spec, report)
    samples, report = clean(raw, spec.bounds, max_atoms=spec.max_atoms,
                            drop_sample_on_outlier=spec.drop_sample_on_outlier, report=report)
    if spec.exclude:
        samples = exclude_formulas(samples, spec.exclude, report=report)
        report.set_kept(samples)
    return samples, report


def load_corpus(spec: CorpusSpec | None = None) -> list[Sample]:
    """The cleaned corpus (default: MP compositions + OQMD + CMR from ../shared/data)."""
    samples, report = build_corpus(spec)
    log.info("pretraining corpus:\n%s", report.summary())
    return samples
