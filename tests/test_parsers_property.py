"""Property tests of the parsers users feed (issue 14): random and mutated CIF / POSCAR records,
jsonl records, table CSV / JSON files and --atom-features specs give a result or a one-line
error the CLI reports (exit 2), never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from adapter_fixtures import DATA, oqmd_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ct_plugins.elements import UnknownElementError
from ct_plugins.records import DataError, load_records, parse_structure
from ct_plugins.registry import load_table
from ct_plugins.table_spec import parse_table_spec
from ct_plugins.tables import EmbeddingTable, TableError

ONE_LINE_ERRORS = (DataError, TableError, UnknownElementError)  # what `ct` prints as one line
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CIF = oqmd_records(1)[0]["cif"]
POSCAR = next((DATA / "jarvis_sample").glob("*.vasp")).read_text()


def outcome(call) -> object:
    """The result, or the one-line error the CLI would print; anything else fails the test."""
    try:
        return call()
    except ONE_LINE_ERRORS as error:
        assert "\n" not in str(error), repr(str(error))
        return error


@st.composite
def mutated(draw, text: str) -> str:
    """``text`` with a few characters deleted, replaced or inserted, or lines dropped or cut."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "replace", "insert", "drop_line", "truncate"]))
        at = draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "replace":
            text = text[:at] + draw(st.text(min_size=1, max_size=5)) + text[at + 1:]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(["-", "0", "1e9", "nan", "Xx", " ", "\n", "_", "'"])) + text[at:]
        elif kind == "drop_line":
            lines = text.splitlines()
            text = "\n".join(lines[:at % max(1, len(lines))] + lines[at % max(1, len(lines)) + 1:])
        else:
            text = text[:at]
    return text


@FAST
@given(st.one_of(mutated(CIF), st.text(max_size=200)))
def test_cif_records(text):
    outcome(lambda: parse_structure(text, "cif", "record 1"))


@FAST
@given(st.one_of(mutated(POSCAR), st.text(max_size=200)))
def test_poscar_records(text):
    outcome(lambda: parse_structure(text, "poscar", "record 1"))


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FAST
@given(target=JSON_VALUES, record_id=JSON_VALUES, drop=st.sampled_from([None, "cif", "target", "id"]),
       line=st.one_of(st.none(), st.text(max_size=30)))
def test_jsonl_records(target, record_id, drop, line):
    records = oqmd_records(4)
    records[1] = {**records[1], "target": target, "id": record_id}
    if drop:
        records[1].pop(drop, None)
    rows = [json.dumps(r) for r in records] + ([line.replace("\n", " ")] if line is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        path.write_text("\n".join(rows) + "\n")
        outcome(lambda: load_records(path, "target"))


ELEMENTS = st.sampled_from(["H", "O", "Si", "Fe", "Xx", "", "8", "o", "He"])
NUMBERS = st.one_of(st.floats(), st.integers(-3, 3).map(str), st.text(max_size=4))


@FAST
@given(st.lists(st.tuples(ELEMENTS, st.lists(NUMBERS, max_size=3)), max_size=5), st.booleans())
def test_table_csv_files(rows, header):
    lines = (["element,0,1"] if header else []) + [",".join([e, *map(str, values)]) for e, values in rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text("\n".join(lines) + "\n")
        assert isinstance(outcome(lambda: EmbeddingTable.read(path)), (EmbeddingTable, *ONE_LINE_ERRORS))


@FAST
@given(st.one_of(
    st.dictionaries(st.one_of(ELEMENTS, st.integers(-1, 120).map(str)), st.one_of(st.lists(st.floats(), max_size=3), JSON_VALUES), max_size=4),
    JSON_VALUES, st.text(max_size=40)))
def test_table_json_files(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        outcome(lambda: EmbeddingTable.read(path))


@FAST
@given(st.one_of(
    st.text(max_size=30),
    st.tuples(st.sampled_from(["ct", "ct-mt", "megnet16", "onehot", "cgcnn92", ""]),
              st.sampled_from(["", ":std", ":pca", ":pca0", ":pca16", ":pca999", ":frozen", ":trainable",
                               ":std:trainable", ":x", "::"])).map("".join)))
def test_atom_features_specs(text):
    outcome(lambda: load_table(parse_table_spec(text)))
