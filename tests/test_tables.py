from __future__ import annotations

import json

import numpy as np
import pytest

from ct_plugins.elements import UnknownElementError
from ct_plugins.tables import (
    ElementNotInTableError,
    EmbeddingTable,
    TableError,
    TableIntegrityError,
)


@pytest.fixture
def table() -> EmbeddingTable:
    rng = np.random.default_rng(0)
    vectors = {e: rng.normal(size=8) for e in ["O", "H", "Ti", "Ba", "Fe"]}
    return EmbeddingTable.from_mapping("demo", vectors, {"description": "test", "metrics": {"mae": 0.1}})


def test_rows_ordered_by_atomic_number(table):
    assert table.elements == ("H", "O", "Ti", "Fe", "Ba")
    assert table.dim == 8 and len(table) == 5
    np.testing.assert_array_equal(table.rows(["Ba", 8]), table.matrix[[4, 1]])


def test_uncovered_element_names_element_and_table(table):
    with pytest.raises(ElementNotInTableError, match=r"'Xe' is not covered by table 'demo'"):
        table.rows(["O", "Xe"])


def test_unknown_symbol_is_rejected(table):
    with pytest.raises(UnknownElementError, match="unknown element 'Qq'"):
        table.rows(["Qq"])


def test_explicit_missing_fill(table):
    np.testing.assert_allclose(table.rows(["Xe"], missing="mean")[0], table.matrix.mean(axis=0))
    assert not table.rows(["Xe"], missing="zero").any()


def test_by_atomic_number_indexes_rows_by_z(table):
    full = table.by_atomic_number()
    assert full.shape == (101, 8)
    np.testing.assert_array_equal(full[56], table.row("Ba"))
    assert not full[2].any()


def test_invalid_matrices_are_rejected():
    with pytest.raises(TableError, match="NaN"):
        EmbeddingTable("bad", ("H",), np.array([[np.nan]]))
    with pytest.raises(TableError, match="does not match"):
        EmbeddingTable("bad", ("H", "He"), np.zeros((3, 4)))
    with pytest.raises(TableError, match="ordered by atomic number"):
        EmbeddingTable("bad", ("O", "H"), np.zeros((2, 4)))


def test_native_round_trip_keeps_everything(table, tmp_path):
    loaded = EmbeddingTable.load(table.save(tmp_path / "t.safetensors"))
    assert loaded.name == table.name and loaded.elements == table.elements
    np.testing.assert_array_equal(loaded.matrix, table.matrix)
    assert loaded.metadata == table.metadata
    assert loaded.sha256() == table.sha256()


@pytest.mark.parametrize("method", ["to_cgcnn_json", "to_json", "to_csv"])
def test_interchange_round_trips(table, tmp_path, method):
    suffix = ".csv" if method == "to_csv" else ".json"
    path = getattr(table, method)(tmp_path / f"t{suffix}")
    loaded = EmbeddingTable.read(path, name="demo")
    assert loaded.elements == table.elements
    np.testing.assert_allclose(loaded.matrix, table.matrix, rtol=1e-6)


def test_cgcnn_json_is_keyed_by_atomic_number(table, tmp_path):
    raw = json.loads(table.to_cgcnn_json(tmp_path / "atom_init.json").read_text())
    assert sorted(raw, key=int) == ["1", "8", "22", "26", "56"]


def test_tampered_file_is_detected(table, tmp_path):
    path = table.save(tmp_path / "t.safetensors")
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF  # flip bits inside the matrix
    path.write_bytes(bytes(blob))
    with pytest.raises(TableIntegrityError, match=r"t\.safetensors: checksum mismatch"):
        EmbeddingTable.load(path)


def test_truncated_file_is_detected(table, tmp_path):
    path = table.save(tmp_path / "t.safetensors")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(TableIntegrityError, match=r"t\.safetensors: not a readable"):
        EmbeddingTable.load(path)


def test_edited_metadata_is_detected(table, tmp_path):
    path = table.save(tmp_path / "t.safetensors")
    text = path.read_bytes().replace(b'mae\\": 0.1', b'mae\\": 0.2')
    assert text != path.read_bytes()
    path.write_bytes(text)
    with pytest.raises(TableIntegrityError, match="checksum mismatch"):
        EmbeddingTable.load(path)


def test_failed_save_keeps_the_old_file(table, tmp_path, monkeypatch):
    path = table.save(tmp_path / "t.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        table.renamed("other").save(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_standardized_has_unit_variance(table):
    std = table.standardized()
    np.testing.assert_allclose(std.matrix.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(std.matrix.std(axis=0), 1, atol=1e-5)


def test_principal_components_are_uncorrelated_with_unit_std(table):
    pcs = table.principal_components(3)
    assert pcs.name == "demo:pca3" and pcs.dim == 3 and pcs.elements == table.elements
    np.testing.assert_allclose(np.cov(pcs.matrix.T, bias=True), np.eye(3), atol=1e-5)
    with pytest.raises(TableError, match="cannot keep 9 principal components"):
        table.principal_components(9)
