"""Benchmark scripts (not part of the installed library: ct_plugins never imports this)."""
