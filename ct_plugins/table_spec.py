"""The one grammar for naming a table and how to use it: ``NAME[:MODIFIER][:MODE]``.

* ``NAME``: a registered table (``ct``, ``ct-mt``, ``megnet16`` …) or a table file path;
* ``MODIFIER``: ``std`` (each dimension standardised) or ``pcaN`` (first N principal
  components, std 1 each);
* ``MODE``: ``frozen`` (rows are fixed features) or ``trainable`` (rows initialise a parameter).

Examples: ``ct``, ``ct-mt:std``, ``ct-mt:trainable``, ``ct-mt:std:trainable``, ``mat2vec:pca16``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from ct_plugins.tables import TableError

Mode = Literal["frozen", "trainable"]
MODES: tuple[str, ...] = get_args(Mode)
_MODIFIER = re.compile(r"std|pca[1-9][0-9]*")


class TableSpecError(TableError):
    """A table spec that does not follow ``NAME[:MODIFIER][:MODE]``."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    modifier: str = ""  # "", "std" or "pcaN"
    mode: Mode | None = None  # None: the command's default

    @property
    def table(self) -> str:
        """``NAME[:MODIFIER]``: what names the rows (the mode is how they are used)."""
        return f"{self.name}:{self.modifier}" if self.modifier else self.name

    @property
    def components(self) -> int | None:
        return int(self.modifier[3:]) if self.modifier.startswith("pca") else None

    def with_mode(self, mode: Mode | None) -> TableSpec:
        """This spec with a mode given separately (``--mode``); two different modes are an error."""
        if mode is None or mode == self.mode:
            return self
        if self.mode is not None:
            raise TableSpecError(f"table spec {str(self)!r} says {self.mode} but --mode says {mode}; "
                                 "give the mode once")
        return TableSpec(self.name, self.modifier, mode)

    def __str__(self) -> str:
        return f"{self.table}:{self.mode}" if self.mode else self.table


def parse_table_spec(text: str) -> TableSpec:
    """``"ct-mt:std:trainable"`` -> ``TableSpec("ct-mt", "std", "trainable")``."""
    parts = str(text).split(":")
    mode = parts.pop() if len(parts) > 1 and parts[-1] in MODES else None
    modifier = parts.pop() if len(parts) > 1 and _MODIFIER.fullmatch(parts[-1]) else ""
    if len(parts) != 1 or not parts[0]:
        unknown = ":".join(parts[1:]) or "an empty name"
        raise TableSpecError(
            f"table spec {text!r}: unknown table modifier or mode {unknown!r}; expected "
            "NAME[:std|:pcaN][:frozen|:trainable], e.g. ct-mt:std:trainable"
        )
    return TableSpec(parts[0], modifier, mode)  # type: ignore[arg-type]
