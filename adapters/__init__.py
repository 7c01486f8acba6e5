"""Adapters that plug embedding tables into upstream crystal GNNs (installed as ct_plugins.adapters)."""
