"""Helpers shared by the upstream adapters: reversible patching, covered elements, projections."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ct_plugins.elements import SYMBOLS
from ct_plugins.tables import EmbeddingTable, Missing

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


def covered_elements(table: EmbeddingTable, missing: Missing) -> list[str]:
    """Elements that get a row: the table's own, or every element when gaps are filled."""
    return list(table.elements) if missing == "error" else list(SYMBOLS)


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


def rows_at_width(
    table: EmbeddingTable, elements: Sequence[str], missing: Missing, dim: int
) -> np.ndarray:
    """The table's rows for ``elements`` in that order, projected to ``dim`` columns."""
    return projected(table.rows(list(elements), missing=missing), dim)


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
