"""Token order: the order in which a sample's atoms reach the transformer.

Token order (both modes): atoms sorted by ascending Pauling electronegativity, ties and
elements without one (He, Ne, Ar) by Z, stable within an element. The model reads out token 0,
so the order must be deterministic and chemically consistent: token 0 is then always the most
electropositive element (the cation written first in a formula, the A/B site of a perovskite,
the metal of an oxide), and composition and structure samples of one compound start alike.
This is also the element order of pymatgen's reduced formulas: Fe2O3 -> z = [26, 26, 8, 8, 8].
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ct_plugins.elements import MAX_Z, SYMBOLS


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
