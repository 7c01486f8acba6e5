"""Real structure data for ``ct train``: .jsonl[.gz] records or an upstream folder, split by seed."""

from __future__ import annotations

import csv
import json
import math
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ct_plugins.elements import UnknownElementError, atomic_number
from ct_plugins.errors import InputError
from ct_plugins.files import open_text
from ct_plugins.tables import EmbeddingTable, Missing

SPLITS = ("train", "val", "test")
STRUCTURE_SUFFIXES = ("", ".cif", ".vasp", ".poscar")


class DataError(InputError):
    """Input data that cannot be trained on; the message names the record."""


class Record:
    """One labelled structure. ``structure`` is a pymatgen Structure, parsed on first use when
    the record comes from data an earlier run already validated (see :mod:`ct_plugins.cache`):
    an upstream that reads cached files never needs it."""

    __slots__ = ("id", "target", "_structure", "_parse", "_counts")

    def __init__(self, id: str, structure: Any = None, target: float = 0.0, *,
                 parse: Callable[[], Any] | None = None, counts: Mapping[str, int] | None = None):
        if structure is None and parse is None:
            raise ValueError("a Record needs a structure or a parser")
        self.id, self.target = id, target
        self._structure, self._parse = structure, parse
        self._counts = dict(counts) if counts is not None else None

    @property
    def structure(self) -> Any:
        if self._structure is None:
            self._structure = self._parse()  # type: ignore[misc]
        return self._structure

    @property
    def counts(self) -> dict[str, int]:
        """Element symbol -> number of atoms in the cell."""
        if self._counts is None:
            self._counts = dict(Counter(site.specie.symbol for site in self.structure))
        return self._counts

    @property
    def elements(self) -> set[str]:
        return set(self.counts)

    def __repr__(self) -> str:
        return f"Record({self.id!r}, target={self.target!r})"


@dataclass(frozen=True)
class Loaded:
    records: list[Record]
    skipped_unlabelled: list[str]


@dataclass(frozen=True)
class _Entry:
    """A labelled record as read, before its structure text is parsed."""

    id: str
    text: str
    fmt: str
    where: str
    target: float

    def parse(self):
        return parse_structure(self.text, self.fmt, self.where)


def load_records(path: str | Path, target: str, index: Path | None = None) -> Loaded:
    """Records from ``*.jsonl[.gz]`` (``cif`` + ``target`` fields) or a folder with ``id_prop.csv``.

    ``index`` (see :func:`ct_plugins.cache.index_path`): when it holds the validation of these
    exact data bytes, structures are parsed lazily (only if an adapter needs them); otherwise
    every structure is parsed and validated now and the index is written for the next run.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if path.is_dir():
        entries, unlabelled = _read_folder(path)
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        entries, unlabelled = _read_jsonl(path, target)
    else:
        raise DataError(f"{path}: expected a .jsonl/.jsonl.gz file or a folder with id_prop.csv")
    if len(entries) < 3:
        raise DataError(f"{path}: {len(entries)} labelled records; need at least 3 to split")
    return Loaded(_records(entries, index), unlabelled)


def _records(entries: list[_Entry], index: Path | None) -> list[Record]:
    from ct_plugins.cache import read_index, write_index

    known = read_index(index) if index is not None else None
    if known is not None and known.keys() == {e.id for e in entries}:
        return [Record(e.id, None, e.target, parse=e.parse, counts=known[e.id]) for e in entries]
    records = [Record(e.id, e.parse(), e.target) for e in entries]
    if index is not None:  # every structure parsed and validated: later runs may skip this
        write_index(index, {r.id: r.counts for r in records})
    return records


def _read_jsonl(path: Path, target: str) -> tuple[list[_Entry], list[str]]:
    try:
        return _parse_jsonl(path, target)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # truncated / not gzip
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}); is it a complete "
                        f"{'gzip-compressed ' if path.name.endswith('.gz') else ''}JSON-lines file?") from exc


def _parse_jsonl(path: Path, target: str) -> tuple[list[_Entry], list[str]]:
    entries, unlabelled, seen = [], [], set()
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not a JSON record ({exc})") from exc
            if not isinstance(raw, dict):
                raise DataError(f"{path}:{line_no}: not a JSON object with fields")
            rid = str(raw.get("id", f"line{line_no}"))
            where = f"{path}:{line_no} (id {rid})"
            if rid in seen:
                raise DataError(f"{where}: duplicate id")
            seen.add(rid)
            if target not in raw:
                keys = ", ".join(k for k in raw if k != "cif")
                raise DataError(f"{where}: no target field {target!r} (fields: {keys})")
            if raw[target] is None:  # unlabelled records exist in the real data: skip, report
                unlabelled.append(rid)
                continue
            if "cif" not in raw:
                raise DataError(f"{where}: no 'cif' field")
            entries.append(_Entry(rid, raw["cif"], "cif", where, _number(raw[target], where)))
    return entries, unlabelled


def _read_folder(folder: Path) -> tuple[list[_Entry], list[str]]:
    id_prop = folder / "id_prop.csv"
    if not id_prop.is_file():
        raise DataError(f"{folder}: no id_prop.csv (rows: structure file or id, target)")
    try:
        return _parse_id_prop(folder, id_prop), []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{id_prop}: cannot read ({type(exc).__name__}: {exc})") from exc


def _parse_id_prop(folder: Path, id_prop: Path) -> list[_Entry]:
    entries = []
    with open(id_prop, newline="", encoding="utf-8") as handle:
        for row_no, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            where = f"{id_prop}:{row_no} ({row[0]})"
            if len(row) < 2:
                raise DataError(f"{where}: expected 'id,target'")
            file = _structure_file(folder, row[0], where)
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{where}: cannot read {file.name} ({exc})") from exc
            fmt = "cif" if file.suffix == ".cif" else "poscar"
            rid = file.name.removesuffix(".cif")
            entries.append(_Entry(rid, text, fmt, where, _number(row[1], where)))
    return entries


def _structure_file(folder: Path, name: str, where: str) -> Path:
    for suffix in STRUCTURE_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(f"{where}: no structure file {name}[.cif|.vasp] in {folder}")


def parse_structure(text: str, fmt: str, where: str):
    """A pymatgen Structure, or a DataError naming the record."""
    import warnings

    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(text, fmt=fmt)
    except Exception as exc:  # pymatgen raises many types for bad files
        detail = " ".join(str(exc).split())[:300]  # pymatgen messages span lines; ours is one
        raise DataError(f"{where}: malformed {fmt.upper()} ({type(exc).__name__}: {detail})") from exc
    if len(structure) == 0:
        raise DataError(f"{where}: structure has no sites")
    for specie in structure.composition.elements:
        try:
            atomic_number(getattr(specie, "symbol", str(specie)))
        except UnknownElementError as exc:
            raise DataError(f"{where}: unknown element ({exc})") from exc
    if not structure.is_ordered:
        raise DataError(f"{where}: disordered (partial occupancy) structures are not supported")
    return structure


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):  # JSON true would silently train on 1.0
        raise DataError(f"{where}: target {value!r} is a boolean, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: target {value!r} is not a number") from exc
    if not math.isfinite(number):
        raise DataError(f"{where}: target is {value!r} (NaN/inf targets cannot be trained on)")
    return number


def check_coverage(records: list[Record], table: EmbeddingTable, missing: Missing) -> None:
    """Fail on the first record with an element the table lacks (unless missing is filled)."""
    if missing != "error":
        return
    for record in records:
        absent = sorted(record.elements - set(table.elements), key=atomic_number)
        if absent:
            raise DataError(
                f"record {record.id}: element(s) {', '.join(absent)} not covered by table "
                f"{table.name!r}; use another table or --missing mean|zero"
            )


def filled_elements(records: list[Record], table: EmbeddingTable, missing: Missing) -> dict[str, int]:
    """Element -> atoms in ``records`` that get a filled (mean/zero) row, printed: a fill is a
    change to the data the user must see."""
    if missing == "error":
        return {}
    counts: dict[str, int] = {}
    for record in records:
        for element, n in record.counts.items():
            if element not in table:
                counts[element] = counts.get(element, 0) + n
    filled = dict(sorted(counts.items(), key=lambda kv: atomic_number(kv[0])))
    if filled:
        print(f"ct train: --missing {missing}: {len(filled)} element(s) not in table {table.name!r} get "
              f"{missing} rows: " + ", ".join(f"{e} ({n} atoms)" for e, n in filled.items()))
    return filled


def split_records(
    records: list[Record], seed: int, split_file: str | Path | None = None,
    fractions: tuple[float, float] = (0.1, 0.1),
) -> dict[str, list[Record]]:
    """train/val/test by a seeded permutation (val and test ≥ 1 each) or by an explicit file."""
    if split_file is not None:
        return _split_from_file(records, Path(split_file))
    n = len(records)
    n_val, n_test = (max(1, round(f * n)) for f in fractions)
    order = np.random.default_rng(seed).permutation(n)
    picked = [records[i] for i in order]
    test, val, train = picked[:n_test], picked[n_test:n_test + n_val], picked[n_test + n_val:]
    return {"train": train, "val": val, "test": test}


def _split_from_file(records: list[Record], path: Path) -> dict[str, list[Record]]:
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"split file {path}: cannot read ({exc})") from exc
    if not isinstance(ids, dict) or not all(isinstance(ids.get(n, []), list) for n in SPLITS):
        raise DataError(f'split file {path}: expected {{"train": [ids], "val": [ids], "test": [ids]}}')
    by_id = {r.id: r for r in records}
    out = {}
    for name in SPLITS:
        unknown = [i for i in ids.get(name, []) if str(i) not in by_id]
        if unknown:
            raise DataError(f"split file {path}: {name} ids not in the data, e.g. {unknown[:3]}")
        out[name] = [by_id[str(i)] for i in ids.get(name, [])]
        if not out[name]:
            raise DataError(f"split file {path}: {name!r} is empty or missing")
    _require_disjoint(out, path)
    return out


def _require_disjoint(splits: dict[str, list[Record]], path: Path) -> None:
    """A record in two parts (or twice in one) would leak test or validation labels into training."""
    counts = Counter(r.id for part in splits.values() for r in part)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise DataError(f"split file {path}: {len(repeated)} id(s) listed more than once, "
                        f"e.g. {repeated[:3]}; train, val and test must not share records")
