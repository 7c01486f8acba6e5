"""Structure-mode samples: a pymatgen Structure, jarvis Atoms, CIF/POSCAR text or a raw record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ct_plugins.elements import SYMBOLS, UnknownElementError, atomic_number
from ct_plugins.pretrain.cleaning_report import UNKNOWN_ELEMENT, UNPARSABLE_STRUCTURE, CleaningReport
from ct_plugins.pretrain.formulas import formula_of_atomic_numbers
from ct_plugins.pretrain.samples import Sample, target_value
from ct_plugins.pretrain.token_order import token_order

if TYPE_CHECKING:
    from pymatgen.core import Structure

StructureFormat = Literal["cif", "poscar"]


class StructureParseError(ValueError):
    """A CIF / POSCAR / jarvis record that cannot be turned into a structure."""


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


def arrays_of(structure: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, Cartesian coords, lattice) of a pymatgen Structure or jarvis Atoms, in token order."""
    if hasattr(structure, "lattice_mat"):  # jarvis.core.atoms.Atoms
        symbols, coords, lattice = structure.elements, structure.cart_coords, structure.lattice_mat
    else:
        if not structure.is_ordered:
            raise StructureParseError("disordered structure (partial occupancies) is not supported")
        symbols = [site.specie.symbol for site in structure]
        coords, lattice = structure.cart_coords, structure.lattice.matrix
    z = np.array([atomic_number(s) for s in symbols], dtype=np.int64)
    coords = np.asarray(coords, dtype=np.float32).reshape(-1, 3)
    order = token_order(z)
    return z[order], np.ascontiguousarray(coords[order]), np.asarray(lattice, dtype=np.float32).reshape(3, 3)


def sample_from_structure(
    structure: Any, *, id: str, source: str = "user", targets: Mapping[str, float] | None = None
) -> Sample:
    """A structure-mode sample from a pymatgen ``Structure`` or a jarvis ``Atoms``."""
    z, coords, lattice = arrays_of(structure)
    return Sample(id, source, formula_of_atomic_numbers(z) if len(z) else "", z, coords, lattice, dict(targets or {}))


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
    targets = {k: v for k, v in ((k, target_value(v)) for k, v in record.get("targets", {}).items()) if v is not None}
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
