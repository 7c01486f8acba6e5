"""The pretraining example: :class:`Sample`, a composition or a structure as a token sequence.

Token order (both modes): atoms sorted by ascending Pauling electronegativity, ties and
elements without one (He, Ne, Ar) by Z, stable within an element
(:mod:`ct_plugins.pretrain.token_order`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


def target_value(value: Any) -> float | None:
    """A target value, or None when missing (null, "", "na")."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
