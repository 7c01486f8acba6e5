"""The one plugin manager: built-in and third-party plugins via the ``ct_plugins`` entry points."""

from __future__ import annotations

import functools
import os
import sys

import pluggy

from ct_plugins import hookspecs

TRACE_ENV = "CT_PLUGINS_TRACE"


def build_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with every installed plugin loaded (tests use this directly)."""
    manager = pluggy.PluginManager("ct_plugins")
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints("ct_plugins")
    manager.check_pending()
    if os.environ.get(TRACE_ENV):
        manager.trace.root.setwriter(lambda message: sys.stderr.write(message))
        manager.enable_tracing()
    return manager


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use."""
    return build_plugin_manager()


def by_unique_name(batches: list, kind: str) -> dict:
    """Flatten the lists that each plugin's hook returned into ``{item.name: item}``.

    Two plugins claiming one name is an error: silently shadowing a table or adapter would
    train with something other than what the user named.
    """
    found: dict = {}
    for batch in batches:
        for item in batch or ():
            if item.name in found:
                raise ValueError(f"two plugins register a {kind} named {item.name!r}")
            found[item.name] = item
    return found


def adapters(manager: pluggy.PluginManager | None = None) -> dict:
    """Adapters by name, from every plugin's ``register_adapters``."""
    return by_unique_name((manager or plugin_manager()).hook.register_adapters(), "adapter")


def get_adapter(name: str, manager: pluggy.PluginManager | None = None):
    known = adapters(manager)
    if name not in known:
        raise KeyError(f"no adapter named {name!r}; installed: {', '.join(sorted(known)) or 'none'}")
    return known[name]
