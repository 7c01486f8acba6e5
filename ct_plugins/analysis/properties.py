"""Element properties to predict back from an embedding, read from pymatgen's element data.

Source for every property: ``pymatgen.core.periodic_table.Element`` (pymatgen's bundled
periodic_table.json). Whether a property is log10-transformed is decided once over all elements
H..Fm (not per table, so every table is scored on the same target): log when the raw values are
all positive and either span more than six decades (conductivity: ~22) or are strongly skewed
(|skew| > 1) with the log reducing the skew.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ct_plugins.analysis.config import AnalysisError
from ct_plugins.elements import SYMBOLS

SKEW_LIMIT = 1.0
DECADES_LIMIT = 6.0


def _radius(element) -> float | None:
    return element.atomic_radius


def _boiling(element) -> float | None:
    return element.boiling_point


def _melting(element) -> float | None:
    return element.melting_point


def _conductivity(element) -> float | None:
    resistivity = element.electrical_resistivity  # ohm·m
    return None if resistivity is None or float(resistivity) <= 0 else 1.0 / float(resistivity)


def _ionization(element) -> float | None:
    return element.ionization_energy


@dataclass(frozen=True)
class PropertySpec:
    key: str
    label: str
    unit: str
    source: str
    getter: Callable[[object], float | None]
    paper_r2: float | None  # CT-UAE paper, Table 6 (reference only, never used as a result)


SPECS: dict[str, PropertySpec] = {
    s.key: s
    for s in (
        PropertySpec("atomic_radius", "atomic radius", "Å", "pymatgen Element.atomic_radius", _radius, 0.784),
        PropertySpec("boiling_point", "boiling point", "K", "pymatgen Element.boiling_point", _boiling, 0.864),
        PropertySpec("melting_point", "melting point", "K", "pymatgen Element.melting_point", _melting, 0.856),
        PropertySpec(
            "electrical_conductivity", "electrical conductivity", "S/m",
            "1 / pymatgen Element.electrical_resistivity", _conductivity, 0.831,
        ),
        PropertySpec(
            "ionization_energy", "first ionisation energy", "eV",
            "pymatgen Element.ionization_energy", _ionization, 0.907,
        ),
    )
}


@dataclass(frozen=True)
class PropertyValues:
    """One property over H..Fm: raw values (elements lacking data are absent) and the transform."""

    spec: PropertySpec
    raw: dict[str, float]
    transform: str  # "log10" or "none"
    skew_raw: float
    skew_log: float | None
    decades: float | None  # log10(max / min), when all values are positive

    def target(self, element: str) -> float | None:
        value = self.raw.get(element)
        if value is None:
            return None
        return float(np.log10(value)) if self.transform == "log10" else value


def spec_for(key: str) -> PropertySpec:
    if key not in SPECS:
        raise AnalysisError(f"unknown property {key!r}; choose from {', '.join(SPECS)}")
    return SPECS[key]


def load_property(key: str) -> PropertyValues:
    from pymatgen.core.periodic_table import Element
    from scipy.stats import skew

    spec = spec_for(key)
    raw = {}
    with warnings.catch_warnings():  # pymatgen warns once per element it has no value for
        warnings.simplefilter("ignore")
        for sym in SYMBOLS:
            value = spec.getter(Element(sym))
            if value is not None and np.isfinite(float(value)):
                raw[sym] = float(value)
    values = np.array(list(raw.values()))
    skew_raw = float(skew(values))
    positive = bool((values > 0).all())
    skew_log = float(skew(np.log10(values))) if positive else None
    decades = float(np.log10(values.max() / values.min())) if positive else None
    transform = _choose_transform(skew_raw, skew_log, decades)
    return PropertyValues(spec, raw, transform, skew_raw, skew_log, decades)


def _choose_transform(skew_raw: float, skew_log: float | None, decades: float | None) -> str:
    if skew_log is None or decades is None:
        return "none"
    skewed = abs(skew_raw) > SKEW_LIMIT and abs(skew_log) < abs(skew_raw)
    return "log10" if decades > DECADES_LIMIT or skewed else "none"
