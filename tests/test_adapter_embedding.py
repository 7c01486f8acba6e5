"""``ct_plugins.atom_embedding``, the ``provide_atom_embedding`` hook and the docs custom model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ct_plugins
from adapter_fixtures import TARGET, subset
from ct_plugins.elements import atomic_number
from ct_plugins.hookspecs import hookimpl
from ct_plugins.plugins import plugin_manager
from ct_plugins.registry import load_table
from ct_plugins.tables import ElementNotInTableError, EmbeddingTable


def test_indexed_by_atomic_number_with_explicit_fill():
    table = load_table("megnet16")
    with pytest.raises(ElementNotInTableError):  # no silent fill unless asked
        ct_plugins.atom_embedding("megnet16")
    embedding = ct_plugins.atom_embedding("megnet16", missing="zero")
    assert embedding.weight.shape == (101, 16) and embedding.weight.requires_grad
    assert np.allclose(embedding(torch.tensor([8])).detach().numpy(), table.row("O"))
    covered = {atomic_number(e) for e in table.elements}
    absent = next(z for z in range(1, 101) if z not in covered)
    assert not embedding.weight[absent].any()  # Z-indexing fills absent elements with zeros
    assert not embedding.weight[0].any()


def test_element_order_and_missing_policy():
    tiny = EmbeddingTable.from_mapping("tiny", {"O": [1.0, 2.0], "Si": [3.0, 4.0]})
    embedding = ct_plugins.atom_embedding(tiny, ["Si", 8], trainable=False)
    assert embedding.weight.tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert not embedding.weight.requires_grad
    with pytest.raises(ElementNotInTableError):
        ct_plugins.atom_embedding(tiny, ["Fe"])
    assert ct_plugins.atom_embedding(tiny, ["Fe"], missing="mean").weight.tolist() == [[2.0, 3.0]]


class _Provider:
    @hookimpl
    def provide_atom_embedding(self, table, elements, trainable, missing):
        return torch.nn.Identity() if table.name == "tiny" else None


def test_a_plugin_can_provide_the_embedding():
    manager = plugin_manager()
    provider = _Provider()
    manager.register(provider)
    try:
        tiny = EmbeddingTable.from_mapping("tiny", {"O": [1.0]})
        assert isinstance(ct_plugins.atom_embedding(tiny), torch.nn.Identity)
        assert isinstance(ct_plugins.atom_embedding("megnet16", missing="zero"), torch.nn.Embedding)
    finally:
        manager.unregister(provider)


def _load_docs_example():
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("example_custom_model",
                                                  REPO / "docs" / "example_custom_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_custom_model_trains_on_real_structures(tmp_path):
    pytest.importorskip("torch_geometric")
    from torch_geometric.loader import DataLoader

    from ct_plugins.records import load_records

    example = _load_docs_example()
    TinyCrystalGNN, to_graph = example.TinyCrystalGNN, example.to_graph

    torch.manual_seed(0)
    records = load_records(subset(tmp_path, 16), TARGET).records
    loader = DataLoader([to_graph(r.structure, r.target) for r in records], batch_size=8)
    model = TinyCrystalGNN("megnet16", hidden=8)
    start = model.embed.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for batch in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.l1_loss(model(batch), batch.y)
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.embed.weight, start)  # trainable rows were fine-tuned
