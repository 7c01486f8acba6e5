"""Element symbols Z = 1..100, the element vocabulary of every table and model here."""

from __future__ import annotations

SYMBOLS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr",
    "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb",
    "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm",
)
MAX_Z = len(SYMBOLS)
_Z_OF = {symbol: z for z, symbol in enumerate(SYMBOLS, start=1)}


class UnknownElementError(KeyError):
    """An element symbol or atomic number outside H..Fm (Z 1..100)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def atomic_number(symbol: str) -> int:
    """Z of an element symbol (case-sensitive, as in chemical formulas)."""
    try:
        return _Z_OF[symbol]
    except KeyError:
        raise UnknownElementError(
            f"unknown element {symbol!r}: expected a symbol from H to Fm (Z 1..{MAX_Z})"
        ) from None


def symbol(z: int) -> str:
    """Element symbol of atomic number z."""
    if not 1 <= int(z) <= MAX_Z:
        raise UnknownElementError(f"unknown atomic number {z}: expected 1..{MAX_Z}")
    return SYMBOLS[int(z) - 1]

