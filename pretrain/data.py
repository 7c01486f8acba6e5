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
import hashlib
import json
import logging
import math
import os
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ct_plugins.elements import MAX_Z, SYMBOLS, UnknownElementError, atomic_number
from ct_plugins.pretrain.cleaning import (
    DEFAULT_BOUNDS,
    DEFAULT_MAX_ATOMS,
    NONFINITE_TARGET,
    EXCLUDED_FORMULA,
    UNKNOWN_ELEMENT,
    UNLABELLED,
    UNPARSABLE_FORMULA,
    UNPARSABLE_STRUCTURE,
    CleaningReport,
    RecordError,
    clean,
)

if TYPE_CHECKING:
    from pymatgen.core import Structure

log = logging.getLogger(__name__)

DATA_ENV = "CT_PLUGINS_DATA"  # overrides ../shared/data
CACHE_ENV = "CT_PLUGINS_CACHE"  # overrides ~/.cache/ct_plugins
PARSER_VERSION = 1  # bump when parsing or token order changes: invalidates the parse cache
StructureFormat = Literal["cif", "poscar"]

OQMD_TARGETS = {"ef": "formation_energy_per_atom", "eg": "band_gap"}
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


@functools.lru_cache(maxsize=None)
def _reduced_formula_of_counts(counts: tuple[tuple[str, int], ...]) -> str:
    from pymatgen.core import Composition

    return Composition(dict(counts)).reduced_formula


def reduced_formula(z: np.ndarray) -> str:
    values, counts = np.unique(np.asarray(z), return_counts=True)
    return _reduced_formula_of_counts(tuple((SYMBOLS[v - 1], int(c)) for v, c in zip(values, counts)))


def normalize_formula(formula: str) -> str:
    """Reduced formula in pymatgen's convention (``"O3Fe2"`` -> ``"Fe2O3"``)."""
    return _formula_tokens(formula)[0]


@functools.lru_cache(maxsize=None)
def _formula_tokens(formula: str) -> tuple[str, tuple[int, ...]]:
    """(reduced formula, atom tokens in token order); raises ValueError / UnknownElementError."""
    from pymatgen.core import Composition

    composition = Composition(formula)
    reduced, _ = composition.get_reduced_composition_and_factor()
    tokens: list[int] = []
    for element, amount in reduced.items():
        if abs(amount - round(amount)) > 1e-6:
            raise ValueError(f"non-integer amount {amount} of {element} in {formula!r}")
        tokens += [atomic_number(str(element))] * round(amount)
    z = np.array(tokens, dtype=np.int64)
    return reduced.reduced_formula, tuple(int(t) for t in z[token_order(z)])


# ---------------------------------------------------------------- compositions


def composition_sample(formula: str, targets: Mapping[str, float], source: str = "user") -> Sample:
    """A composition-mode sample: the atoms of the reduced formula, no coordinates."""
    reduced, tokens = _formula_tokens(formula)
    return Sample(reduced, source, reduced, np.array(tokens, dtype=np.int64), None, None, dict(targets))


def composition_samples(
    ef_csv: Path | None,
    eg_csv: Path | None = None,
    *,
    source: str = "mp_compositions",
    report: CleaningReport | None = None,
    progress: bool = True,
) -> list[Sample]:
    """MP compositions (``formula,target`` CSVs) merged by reduced formula, polymorphs averaged.

    Formulas that do not parse or hold unknown elements go into ``report`` (or raise in a
    strict report); non-finite values are left out of the average and reported.
    """
    report = report if report is not None else CleaningReport()
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, path in (("ef", ef_csv), ("eg", eg_csv)):
        if path is not None:
            _collect_csv_targets(Path(path), name, source, values, report, progress)
    samples = []
    for formula, per_target in values.items():
        targets = {name: float(np.mean(v)) for name, v in per_target.items() if v}
        samples.append(composition_sample(formula, targets, source))
    return samples


def _collect_csv_targets(path, name, source, values, report, progress) -> None:
    from tqdm.auto import tqdm

    with _open_text(path) as handle:
        rows = list(csv.DictReader(handle))
    for line, row in enumerate(tqdm(rows, desc=f"{path.name}", disable=not progress, leave=False), 2):
        record_id = f"{path.name}:{line}:{row.get('formula')}"
        try:
            reduced, _ = _formula_tokens(row["formula"])
        except UnknownElementError as error:
            report.add(source, UNKNOWN_ELEMENT, record_id, str(error))
            continue
        except Exception as error:  # pymatgen raises several types for malformed formulas
            report.add(source, UNPARSABLE_FORMULA, record_id, f"{type(error).__name__}: {error}")
            continue
        value = _as_float(row.get("target"))
        if value is not None and not math.isfinite(value):
            report.add(source, NONFINITE_TARGET, record_id, f"{name}={value}")
        elif value is not None:
            values[reduced][name].append(value)
        else:
            report.add(source, UNLABELLED, record_id, name)


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


# ---------------------------------------------------------------- parsing many structures, cached


@dataclass(frozen=True)
class ParsedStructures:
    """Arrays of many parsed structures (what the cache stores), plus the failures."""

    ids: list[str]
    z: list[np.ndarray]
    coords: list[np.ndarray]
    lattices: np.ndarray  # (n, 3, 3)
    failures: list[tuple[str, str, str]]  # (id, reason, message)


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
    items: Sequence[tuple[str, str, str]], *, workers: int | None = None, progress: bool = True, desc: str = "parse"
) -> ParsedStructures:
    """Parse (id, text, fmt) items, in ``workers`` processes (default: one per core)."""
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    ids, zs, coords, lattices, failures = [], [], [], [], []
    with _executor(workers) as pool:
        results = pool.map(_parse_one, items, chunksize=256) if pool else map(_parse_one, items)
        for record_id, result in tqdm(results, total=len(items), desc=desc, disable=not progress, leave=False):
            if isinstance(result[0], str):
                failures.append((record_id, *result))
            else:
                ids.append(record_id)
                zs.append(result[0])
                coords.append(result[1])
                lattices.append(result[2])
    lattice_array = np.stack(lattices) if lattices else np.zeros((0, 3, 3), np.float32)
    return ParsedStructures(ids, zs, coords, lattice_array, failures)


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _executor(workers: int):
    return ProcessPoolExecutor(workers) if workers > 1 else _NoPool()


def cache_dir() -> Path:
    """``$CT_PLUGINS_CACHE`` or ``$XDG_CACHE_HOME/ct_plugins`` (default ~/.cache/ct_plugins)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ct_plugins"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_path(path: Path, field_name: str, fmt: str) -> Path:
    key = f"{file_sha256(path)}-{field_name}-{fmt}-v{PARSER_VERSION}"
    return cache_dir() / "structures" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def _save_parsed(parsed: ParsedStructures, target: Path) -> None:
    """Atomic: write a temporary file next to the target, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    natoms = np.array([len(z) for z in parsed.z], dtype=np.int64)
    fail = np.array(parsed.failures, dtype=str).reshape(-1, 3)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                ids=np.array(parsed.ids, dtype=str),
                natoms=natoms,
                z=np.concatenate(parsed.z) if parsed.z else np.zeros(0, np.int64),
                coords=np.concatenate(parsed.coords) if parsed.coords else np.zeros((0, 3), np.float32),
                lattices=parsed.lattices,
                failures=fail,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_parsed(path: Path) -> ParsedStructures:
    with np.load(path) as data:
        bounds = np.concatenate([[0], np.cumsum(data["natoms"])])
        z, coords = data["z"], data["coords"]
        return ParsedStructures(
            ids=data["ids"].tolist(),
            z=[z[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
            coords=[coords[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
            lattices=data["lattices"],
            failures=[tuple(row) for row in data["failures"].tolist()],
        )


def _parsed_file(path: Path, records: list[dict], field_name: str, fmt: str, cache: bool, workers, progress):
    cached = _cache_path(path, field_name, fmt) if cache else None
    if cached is not None and cached.is_file():
        try:
            return _load_parsed(cached)
        except Exception as error:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable parse cache %s: %s", cached, error)
    items = [(str(r.get("id")), r.get(field_name) or "", fmt) for r in records]
    parsed = parse_structures(items, workers=workers, progress=progress, desc=f"parse {path.name}")
    if cached is not None:
        try:
            _save_parsed(parsed, cached)
        except OSError as error:  # read-only home etc.: loading still works, only slower
            log.warning("cannot write parse cache %s: %s", cached, error)
    return parsed


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
    workers: int | None = None,
    progress: bool = True,
) -> list[Sample]:
    """Structure records (JSON lines with ``id``, a CIF and target fields) -> samples.

    ``target_keys`` maps our target names to record fields; targets named in ``per_cell`` are
    per cell in the file and divided by the number of atoms of the parsed cell (CMR's
    ``heat_of_formation_per_cell``). Parse failures go into ``report``. Parsed arrays are cached
    under :func:`cache_dir`, keyed by the file's sha256, so later loads skip CIF parsing.
    """
    path = Path(jsonl_gz)
    source = source or path.name.split("_")[0]
    report = report if report is not None else CleaningReport()
    records = read_jsonl(path)
    parsed = _parsed_file(path, records, structure_field, fmt, cache, workers, progress)
    for record_id, reason, message in parsed.failures:
        report.add(source, reason, record_id, message)
    by_id = {str(r.get("id")): r for r in records}
    samples = []
    for i, record_id in enumerate(parsed.ids):
        z = parsed.z[i]
        targets = _record_targets(by_id[record_id], target_keys, per_cell, len(z))
        samples.append(Sample(record_id, source, reduced_formula(z), z, parsed.coords[i], parsed.lattices[i], targets))
    return samples


def _record_targets(record: Mapping, target_keys: Mapping[str, str], per_cell: Collection[str], n: int):
    targets = {}
    for name, key in target_keys.items():
        value = _as_float(record.get(key))
        if value is not None:
            targets[name] = value / n if name in per_cell else value
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
    with zipfile.ZipFile(split_zip) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")]
        if len(names) != 1:
            raise ValueError(f"{split_zip}: expected one .json file inside, found {names}")
        content = json.loads(archive.read(names[0]))
    return {part: list(ids) for part, ids in content.items()}


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
    candidates += [Path(__file__).resolve().parents[1].parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
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

    sources: tuple[str, ...] = ("mp_compositions", "oqmd", "cmr")  # see SOURCES
    data_dir: Path | None = None  # default: shared_data_dir()
    exclude: frozenset[str] = frozenset()  # downstream formulas to keep out (leakage guard)
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    max_atoms: int = DEFAULT_MAX_ATOMS
    drop_sample_on_outlier: bool = True
    targets: tuple[str, ...] = ("ef", "eg")
    split_file: Path | None = None  # jarvis sources: keep only the split's `split_parts`
    split_parts: tuple[str, ...] = ("train",)
    cache: bool = True
    workers: int | None = None
    progress: bool = True
    strict: bool = False


def _mp_compositions(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
    folder = root / "mp_compositions"
    ef = folder / "mp_e_form.csv.gz" if "ef" in spec.targets else None
    eg = folder / "mp_gap.csv.gz" if "eg" in spec.targets else None
    return composition_samples(ef, eg, report=report, progress=spec.progress)


def _perovskites(name: str, target_keys: Mapping[str, str], per_cell: Collection[str] = ()):
    def load(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
        keys = {k: v for k, v in target_keys.items() if k in spec.targets}
        path = root / "perovskites" / f"{name}_perovskites.jsonl.gz"
        return structure_samples(path, keys, source=name, per_cell=per_cell, report=report,
                                 cache=spec.cache, workers=spec.workers, progress=spec.progress)

    return load


def _jarvis(dataset: str):
    def load(spec: CorpusSpec, root: Path, report: CleaningReport) -> list[Sample]:
        keys = {k: v for k, v in JARVIS_DATASETS[dataset][1].items() if k in spec.targets}
        return jarvis_online_samples(dataset, spec.split_file, parts=spec.split_parts, target_keys=keys,
                                     report=report, progress=spec.progress)

    return load


SourceLoader = Callable[[CorpusSpec, Path, CleaningReport], list[Sample]]
SOURCES: dict[str, SourceLoader] = {
    "mp_compositions": _mp_compositions,
    "oqmd": _perovskites("oqmd", OQMD_TARGETS),
    "cmr": _perovskites("cmr", CMR_TARGETS, per_cell=("ef",)),
    "jarvis_megnet": _jarvis("megnet"),
    "jarvis_dft_3d": _jarvis("dft_3d"),
}


def build_corpus(spec: CorpusSpec | None = None) -> tuple[list[Sample], CleaningReport]:
    """Load, clean and leakage-filter the corpus; the report says what was dropped and why."""
    spec = spec or CorpusSpec()
    unknown = [s for s in spec.sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown corpus sources {unknown}; known: {', '.join(SOURCES)}")
    offline = [s for s in spec.sources if not s.startswith("jarvis_")]
    root = Path(spec.data_dir) if spec.data_dir else (shared_data_dir() if offline else Path("."))
    report = CleaningReport(strict=spec.strict)
    raw: list[Sample] = []
    for name in spec.sources:
        raw += SOURCES[name](spec, root, report)
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
