"""Helpers shared by the upstream adapters: reversible patching, feature specs, trainable rows."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ct_plugins.adapter import MODES, Adapter, Mode
from ct_plugins.tables import EmbeddingTable, Missing, TableError

_ABSENT = object()


@contextlib.contextmanager
def swapped(owner: Any, name: str, value: Any) -> Iterator[Any]:
    """Set ``owner.name = value`` inside the block and restore the exact previous state after.

    For classes we look in ``owner.__dict__`` (not ``getattr``) so an inherited attribute is
    deleted again on exit instead of being copied onto the subclass.
    """
    namespace = vars(owner) if isinstance(owner, type) else owner.__dict__
    previous = namespace.get(name, _ABSENT)
    setattr(owner, name, value)
    try:
        yield previous
    finally:
        if previous is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, previous)


def patch_or_upstream(
    adapter: Adapter, table: EmbeddingTable | None, mode: Mode, missing: Missing, **options: Any
) -> contextlib.AbstractContextManager:
    """The adapter's patch, or nothing at all for ``table=None``: the upstream's own features.

    Benchmarks compare against the untouched upstream through the same code path, so the
    baseline and the table variants differ only in the patch.
    """
    if table is None:
        adapter.require()
        return contextlib.nullcontext()
    return adapter.patch(table, mode, missing, **options)


class TableAdapter(Adapter):
    """An adapter whose ``patch`` checks the upstream version and the mode, then delegates."""

    def patch(
        self, table: EmbeddingTable, mode: Mode = "frozen", missing: Missing = "error"
    ) -> contextlib.AbstractContextManager:
        self.require()
        return self._patch(table, check_mode(mode), missing)

    @staticmethod
    def _patch(table: EmbeddingTable, mode: Mode, missing: Missing) -> contextlib.AbstractContextManager:
        raise NotImplementedError  # a staticmethod context manager in each adapter


@dataclass(frozen=True)
class FeatureSpec:
    """A user's atom-features text: ``"ct"``, ``"ct-mt:trainable"``, ``"megnet16:std"``."""

    table: str
    mode: Mode = "frozen"

    @classmethod
    def parse(cls, text: str, default_mode: Mode = "frozen") -> FeatureSpec:
        base, _, last = text.rpartition(":")
        if base and last in MODES:
            return cls(base, last)  # type: ignore[arg-type]
        return cls(text, default_mode)

    def __str__(self) -> str:
        return f"{self.table}:{self.mode}"


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def covered_elements(table: EmbeddingTable, missing: Missing) -> list[str]:
    """Elements that get a row: the table's own, or every element when gaps are filled."""
    if missing == "error":
        return list(table.elements)
    from ct_plugins.elements import SYMBOLS

    return list(SYMBOLS)


def onehot_rows(n: int) -> np.ndarray:
    """Identity rows: in trainable mode the data pipeline carries an element index, not values."""
    return np.eye(n, dtype=np.float32)


def projected(matrix: np.ndarray, dim: int) -> np.ndarray:
    """Rows mapped to ``dim`` columns by a fixed, deterministic linear map.

    More columns than wanted: project onto the top-``dim`` principal axes (PCA over the given
    rows, sign fixed so the largest loading is positive) and rescale to the original total
    variance, so the rows keep their geometry as far as ``dim`` axes allow. Fewer columns:
    pad with zeros (nothing is invented).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n, d = matrix.shape
    if d == dim:
        return matrix.astype(np.float32)
    if d < dim:
        return np.hstack([matrix, np.zeros((n, dim - d))]).astype(np.float32)
    centred = matrix - matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:dim]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * signs[:, None]
    out = np.zeros((n, dim))
    out[:, : len(axes)] = centred @ axes.T
    total, kept = centred.var(axis=0).sum(), out.var(axis=0).sum()
    if kept > 0:
        out *= np.sqrt(total / kept)
    return out.astype(np.float32)


def element_rows(
    table: EmbeddingTable, elements: Sequence[str], missing: Missing = "error", dim: int | None = None
) -> np.ndarray:
    """The table's rows for ``elements`` in that order, optionally projected to ``dim`` columns."""
    rows = table.rows(list(elements), missing=missing)
    return rows if dim is None else projected(rows, dim)


def require_dim(table: EmbeddingTable, expected: int, where: str) -> None:
    if table.dim != expected:
        raise TableError(
            f"table {table.name!r} has {table.dim} dims but {where} expects {expected}; "
            "set the input size to the table dimension"
        )


def init_then(original: Callable[..., None], after: Callable[..., None]) -> Callable[..., None]:
    """An ``__init__`` that runs upstream's ``original`` and then ``after(self, *args, **kwargs)``.

    It keeps upstream's signature (``functools.wraps`` plus ``__signature__``) because upstream
    code introspects it: matgl's ``save_args`` records constructor arguments via
    ``inspect.getfullargspec(cls.__init__)``, and ``matgl.load_model`` rebuilds from them.
    """

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        after(self, *args, **kwargs)

    __init__.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]
    return __init__
