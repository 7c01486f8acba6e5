"""Element embedding tables: the one value that flows from pretraining to every adapter.

On disk a table is a safetensors file (no code runs on load) holding the float32 matrix and, in
its header, the element symbols, the metadata and a sha256 over all of them. Every load recomputes
the sha256, so a corrupted or edited file fails loudly instead of training a model on bad rows.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ct_plugins.elements import MAX_Z, UnknownElementError, atomic_number, symbol
from ct_plugins.files import atomic_write_bytes, json_default

FORMAT = "ct-plugins-table/1"
TABLE_SUFFIX = ".safetensors"
Missing = Literal["error", "mean", "zero"]


class TableError(ValueError):
    """A table file or value that cannot be used."""


class TableIntegrityError(TableError):
    """A table file whose content does not match its recorded sha256, or that cannot be parsed."""


class ElementNotInTableError(UnknownElementError):
    """A valid element that the table has no row for."""


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """An n×d float32 matrix with one row per element, rows ordered by atomic number.

    ``metadata`` carries provenance; the keys used across the project are ``description``,
    ``source_data``, ``training_config``, ``metrics``, ``element_counts`` (element → number of
    training occurrences), ``unseen_elements``, ``created_commit`` and ``recipe``.
    """

    name: str
    elements: tuple[str, ...]
    matrix: np.ndarray
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        elements = tuple(self.elements)
        _check_elements(elements, self.name)
        if matrix.ndim != 2 or matrix.shape[0] != len(elements):
            raise TableError(
                f"table {self.name!r}: matrix shape {matrix.shape} does not match "
                f"{len(elements)} elements"
            )
        if not np.isfinite(matrix).all():
            raise TableError(f"table {self.name!r}: matrix contains NaN or inf")
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @classmethod
    def from_mapping(
        cls, name: str, vectors: Mapping[str, Iterable[float]], metadata: Mapping | None = None
    ) -> EmbeddingTable:
        """Build a table from ``{symbol: vector}`` in any order."""
        if not vectors:
            raise TableError(f"table {name!r}: no element rows")
        elements = sorted(vectors, key=atomic_number)
        try:
            rows = [np.asarray(list(vectors[e]), dtype=np.float32) for e in elements]
        except (TypeError, ValueError) as exc:
            raise TableError(f"table {name!r}: every element needs a list of numbers ({exc})") from exc
        if len({r.shape for r in rows}) > 1 or rows[0].ndim != 1:
            raise TableError(f"table {name!r}: vectors have different lengths")
        if not rows[0].size:
            raise TableError(f"table {name!r}: vectors are empty")
        return cls(name, tuple(elements), np.stack(rows), metadata or {})

    # --- access -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def description(self) -> str:
        return str(self.metadata.get("description", ""))

    def __len__(self) -> int:
        return len(self.elements)

    def __contains__(self, element: object) -> bool:
        return element in self._index

    @functools.cached_property  # built once: `in` and rows() are called per record in loops
    def _index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.elements)}

    def row(self, element: str) -> np.ndarray:
        return self.rows([element])[0]

    def rows(self, elements: Iterable[str | int], missing: Missing = "error") -> np.ndarray:
        """Rows for ``elements`` (symbols or atomic numbers), shape (len(elements), dim).

        An element the table lacks raises :class:`ElementNotInTableError` unless ``missing`` is
        ``"mean"`` (mean of all rows) or ``"zero"``.
        """
        index = self._index
        out = np.empty((0, self.dim), dtype=np.float32)
        picked = []
        for item in elements:
            sym = symbol(item) if isinstance(item, (int, np.integer)) else item
            atomic_number(sym)  # unknown symbols fail here, with their own message
            if sym in index:
                picked.append(self.matrix[index[sym]])
            elif missing == "mean":
                picked.append(self.matrix.mean(axis=0))
            elif missing == "zero":
                picked.append(np.zeros(self.dim, dtype=np.float32))
            else:
                raise ElementNotInTableError(
                    f"element {sym!r} is not covered by table {self.name!r} "
                    f"({len(self)} elements, {self.elements[0]}..{self.elements[-1]}); "
                    "pass missing='mean' or 'zero' to fill it explicitly"
                )
        return np.stack(picked).astype(np.float32) if picked else out

    def by_atomic_number(self, missing: Missing = "zero") -> np.ndarray:
        """A (MAX_Z + 1)×d matrix indexed by Z (row 0 unused), for embedding layers."""
        return np.vstack(
            [np.zeros((1, self.dim), np.float32), self.rows(range(1, MAX_Z + 1), missing)]
        )

    def renamed(self, name: str, **metadata: Any) -> EmbeddingTable:
        return EmbeddingTable(name, self.elements, self.matrix, {**self.metadata, **metadata})

    def standardized(self) -> EmbeddingTable:
        """Each dimension shifted to mean 0 and scaled to std 1 over the elements."""
        std = self.matrix.std(axis=0)
        scaled = (self.matrix - self.matrix.mean(axis=0)) / np.where(std > 0, std, 1.0)
        return EmbeddingTable(self.name + ":std", self.elements, scaled, self.metadata)

    def principal_components(self, n: int) -> EmbeddingTable:
        """The first ``n`` principal-component scores, each scaled to std 1 over the elements.

        Fits a table to a back-end of width ``n`` (MEGNet's 16) without widening the model.
        """
        if not 0 < n <= min(self.matrix.shape):
            raise TableError(f"table {self.name!r}: cannot keep {n} principal components of a "
                             f"{self.matrix.shape[0]}x{self.dim} matrix")
        centred = self.matrix - self.matrix.mean(axis=0)
        u, _, _ = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        scores = u[:, :n] * np.sqrt(len(self.elements))  # columns of u have unit norm
        return EmbeddingTable(f"{self.name}:pca{n}", self.elements, scores, self.metadata)

    # --- integrity ----------------------------------------------------------------------------
    def sha256(self) -> str:
        """Digest of name, elements, matrix and metadata: what a file must reproduce."""
        digest = hashlib.sha256()
        digest.update(self._header_json(with_checksum=False).encode())
        digest.update(self.matrix.astype("<f4").tobytes())
        return digest.hexdigest()

    def _header_json(self, with_checksum: bool) -> str:
        header = {
            "format": FORMAT,
            "name": self.name,
            "elements": list(self.elements),
            "metadata": self.metadata,
        }
        if with_checksum:
            header["sha256"] = self.sha256()
        return json.dumps(header, sort_keys=True, default=json_default)

    # --- native format ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename): an interrupted save leaves the old file."""
        from safetensors.numpy import save

        blob = save({"embedding": self.matrix}, metadata={"ct_table": self._header_json(True)})
        return atomic_write_bytes(Path(path), blob)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingTable:
        """Read a table file and verify its sha256; any mismatch raises TableIntegrityError."""
        path = Path(path)
        if not path.is_file():
            raise TableError(f"table file not found: {path}")
        try:
            header, matrix = _read_safetensors(path)
            table = cls(header["name"], tuple(header["elements"]), matrix, header["metadata"])
            recorded = header["sha256"]
        except TableIntegrityError:
            raise
        except Exception as exc:  # truncated bytes, bad JSON, missing keys, wrong shapes
            raise TableIntegrityError(f"{path}: not a readable ct-plugins table ({exc})") from exc
        if table.sha256() != recorded:
            raise TableIntegrityError(
                f"{path}: checksum mismatch (recorded {recorded[:12]}…, content "
                f"{table.sha256()[:12]}…); the file was modified or corrupted"
            )
        return table

    # --- interchange formats ------------------------------------------------------------------
    def to_cgcnn_json(self, path: str | os.PathLike) -> Path:
        """CGCNN ``atom_init.json``: keys are atomic numbers as strings."""
        data = {str(atomic_number(e)): row.tolist() for e, row in zip(self.elements, self.matrix)}
        return atomic_write_bytes(Path(path), json.dumps(data).encode())

    @classmethod
    def from_cgcnn_json(cls, path: str | os.PathLike, name: str | None = None) -> EmbeddingTable:
        raw = _read_json(Path(path))
        try:
            vectors = _unique({symbol(int(z)): v for z, v in raw.items()}, len(raw), path)
        except ValueError as exc:
            raise TableError(f"{path}: keys must be atomic numbers ({exc})") from exc
        return cls.from_mapping(name or Path(path).stem, vectors, {"source_data": str(path)})

    def to_json(self, path: str | os.PathLike) -> Path:
        """elementembeddings-style JSON: ``{symbol: [floats]}``."""
        data = {e: row.tolist() for e, row in zip(self.elements, self.matrix)}
        return atomic_write_bytes(Path(path), json.dumps(data).encode())

    @classmethod
    def from_json(cls, path: str | os.PathLike, name: str | None = None) -> EmbeddingTable:
        raw = _read_json(Path(path))
        return cls.from_mapping(name or Path(path).stem, raw, {"source_data": str(path)})

    def to_csv(self, path: str | os.PathLike) -> Path:
        """elementembeddings-style CSV: header ``element,0,1,…``, one row per element."""
        lines = [",".join(["element", *map(str, range(self.dim))])]
        lines += [",".join([e, *map(repr, map(float, r))]) for e, r in zip(self.elements, self.matrix)]
        return atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())

    @classmethod
    def from_csv(cls, path: str | os.PathLike, name: str | None = None) -> EmbeddingTable:
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.reader(handle)][1:]  # [0] is the header
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise TableError(f"{path}: cannot read CSV ({exc})") from exc
        rows = [row for row in rows if row]
        try:
            vectors = {row[0]: [float(x) for x in row[1:]] for row in rows}
        except ValueError as exc:
            raise TableError(f"{path}: non-numeric value ({exc})") from exc
        _unique(vectors, len(rows), path)
        return cls.from_mapping(name or Path(path).stem, vectors, {"source_data": str(path)})

    @classmethod
    def read(cls, path: str | os.PathLike, name: str | None = None) -> EmbeddingTable:
        """Read any supported file, choosing the format by its suffix."""
        suffix = Path(path).suffix.lower()
        if suffix == TABLE_SUFFIX:
            table = cls.load(path)
            return table.renamed(name) if name else table
        if suffix == ".csv":
            return cls.from_csv(path, name)
        if suffix == ".json":
            raw = _read_json(Path(path))
            is_cgcnn = all(k.isdigit() for k in raw)
            return (cls.from_cgcnn_json if is_cgcnn else cls.from_json)(path, name)
        raise TableError(f"{path}: unknown table format {suffix!r} (use .safetensors, .json, .csv)")


def _check_elements(elements: tuple[str, ...], name: str) -> None:
    if not elements:
        raise TableError(f"table {name!r} has no elements")
    numbers = [atomic_number(e) for e in elements]
    if numbers != sorted(set(numbers)):
        raise TableError(f"table {name!r}: elements must be unique and ordered by atomic number")


def _read_safetensors(path: Path) -> tuple[dict, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        header = json.loads((handle.metadata() or {})["ct_table"])
        matrix = handle.get_tensor("embedding")
    if header.get("format") != FORMAT:
        raise TableIntegrityError(f"{path}: unsupported table format {header.get('format')!r}")
    return header, matrix


def _unique(vectors: dict, n_rows: int, path: os.PathLike) -> dict:
    """``vectors`` unless rows named the same element (a dict would keep only the last one)."""
    if len(vectors) != n_rows:
        raise TableError(f"{path}: {n_rows - len(vectors)} duplicate element row(s); "
                         "each element may appear once")
    return vectors


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    from collections import Counter

    repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    if repeated:
        raise TableError(f"duplicate key(s) {', '.join(repeated[:5])}; each element may appear once")
    return dict(pairs)


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except TableError as exc:
        raise TableError(f"{path}: {exc}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: cannot read JSON table ({exc})") from exc
    if not isinstance(raw, dict):
        raise TableError(f"{path}: expected a JSON object mapping elements to vectors")
    return raw
