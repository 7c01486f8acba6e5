"""Named tables: resolve ``"ct-mt"``, ``"cgcnn92"``, ``"megnet16"`` … or a file path to a table."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pluggy

from ct_plugins.plugins import by_unique_name, plugin_manager
from ct_plugins.table_spec import TableSpec, parse_table_spec
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


def load_table(
    spec: str | os.PathLike | TableSpec, manager: pluggy.PluginManager | None = None
) -> EmbeddingTable:
    """A table by spec ``NAME[:std|:pcaN][:MODE]`` (see :mod:`ct_plugins.table_spec`).

    ``NAME`` is a registered name or a table file (.safetensors, .json, .csv); ``:std`` returns
    the table standardised per dimension, ``:pcaN`` its first N principal components (std 1).
    A mode suffix does not change the rows: it tells adapters how to use them.
    """
    parsed = spec if isinstance(spec, TableSpec) else parse_table_spec(str(spec))
    sources = table_sources(manager)
    if parsed.name in sources:
        table = sources[parsed.name].load()
    elif _is_file(parsed.name):
        table = EmbeddingTable.read(parsed.name)
    else:
        raise TableError(
            f"no table named {parsed.name!r} and no such file; known tables: {', '.join(sorted(sources))}"
        )
    if parsed.components is not None:
        return table.principal_components(parsed.components)
    return table.standardized() if parsed.modifier == "std" else table


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
