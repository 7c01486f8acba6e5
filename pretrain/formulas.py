"""Formula arithmetic: reduced integer element counts, pymatgen's reduced formula, tokens."""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from ct_plugins.elements import SYMBOLS, atomic_number
from ct_plugins.pretrain.token_order import token_order

Counts = tuple[tuple[int, int], ...]  # ((Z, count), ...) sorted by Z, reduced by the gcd
_SIMPLE_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_ELEMENT_AMOUNT = re.compile(r"([A-Z][a-z]?)(\d*)")


def reduced_counts(formula: str) -> Counts:
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


def counts_of_z(z: np.ndarray) -> Counts:
    values, counts = np.unique(np.asarray(z), return_counts=True)
    return _reduce(dict(zip(values.tolist(), counts.tolist())), "structure")


@functools.lru_cache(maxsize=None)
def formula_of_counts(counts: Counts) -> str:
    """pymatgen's reduced formula string (it also groups polyanions: ``Fe3H28(S2O15)2``)."""
    from pymatgen.core import Composition

    return Composition({SYMBOLS[z - 1]: n for z, n in counts}).reduced_formula


def tokens_of_counts(counts: Counts) -> np.ndarray:
    z = np.repeat(np.array([c[0] for c in counts], dtype=np.int64), [c[1] for c in counts])
    return z[token_order(z)]


def formula_of_atomic_numbers(z: np.ndarray) -> str:
    """Reduced formula (pymatgen convention) of a list of atomic numbers."""
    return formula_of_counts(counts_of_z(z))


def normalize_formula(formula: str) -> str:
    """Reduced formula in pymatgen's convention (``"O6Fe4"`` -> ``"Fe2O3"``)."""
    return formula_of_counts(reduced_counts(formula))
