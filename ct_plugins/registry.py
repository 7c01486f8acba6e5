"""Named tables: resolve ``"ct-mt"``, ``"cgcnn92"``, ``"megnet16"`` … or a file path to a table."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pluggy

from ct_plugins.plugins import by_unique_name, plugin_manager
from ct_plugins.tables import TABLE_SUFFIX, EmbeddingTable, TableError

HOME_ENV = "CT_PLUGINS_HOME"


class TableUnavailable(TableError):
    """A registered table that cannot be loaded here (the reason says why)."""


@dataclass(frozen=True)
class TableSource:
    """A lazily loaded named table, as returned by the ``register_tables`` hook."""

    name: str
    load: Callable[[], EmbeddingTable]
    description: str = ""
    group: str = "other"  # "ct", "upstream", "peer", "user", "baseline", or a plugin's own


def user_table_dir() -> Path:
    """Where ``ct tables import`` stores tables: ``$CT_PLUGINS_HOME/tables`` or ~/.ct_plugins."""
    return Path(os.environ.get(HOME_ENV, Path.home() / ".ct_plugins")) / "tables"


def table_sources(manager: pluggy.PluginManager | None = None) -> dict[str, TableSource]:
    return by_unique_name((manager or plugin_manager()).hook.register_tables(), "table")


def load_table(name_or_path: str | os.PathLike, manager: pluggy.PluginManager | None = None) -> EmbeddingTable:
    """A table by registered name, or read from a file (.safetensors, .json, .csv).

    A ``:std`` suffix on a name (``"ct-mt:std"``) returns the table standardised per dimension;
    ``:pcaN`` (``"ct-mt:pca16"``) its first N principal components, scaled to std 1.
    """
    text = str(name_or_path)
    base, _, modifier = text.partition(":")
    components = re.fullmatch(r"pca([0-9]+)", modifier)
    if modifier not in ("", "std") and not components:
        raise TableError(f"unknown table modifier {modifier!r} in {text!r} (':std' or ':pcaN')")
    sources = table_sources(manager)
    if base in sources:
        table = sources[base].load()
    elif _is_file(base):
        table = EmbeddingTable.read(base)
    else:
        raise TableError(
            f"no table named {base!r} and no such file; known tables: {', '.join(sorted(sources))}"
        )
    if components:
        return table.principal_components(int(components.group(1)))
    return table.standardized() if modifier == "std" else table


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a NUL byte or an over-long name: not a file, just a bad name
        return False


def import_table(path: str | os.PathLike, name: str, force: bool = False) -> Path:
    """Copy a table file into the user table folder under ``name`` (then loadable by name);
    replacing an imported table of that name needs ``force``."""
    if not name or "/" in name or ":" in name or "\\" in name or name.startswith("."):
        raise TableError(f"invalid table name {name!r}")
    taken = table_sources().get(name)
    if taken is not None and taken.group != "user":  # shadowing a shipped table would mislead
        raise TableError(f"table name {name!r} is taken by a {taken.group} table; choose another")
    if taken is not None and not force:  # runs that used the old rows would silently change
        raise TableError(f"a table named {name!r} is already imported; pass --force to replace it")
    table = EmbeddingTable.read(path).renamed(name)
    return table.save(user_table_dir() / f"{name}{TABLE_SUFFIX}")
