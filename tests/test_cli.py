"""The `ct` command line, run as a subprocess the way users run it."""

from __future__ import annotations

import json

import numpy as np

from ct_plugins.tables import EmbeddingTable
from conftest import run_ct


def test_help_lists_commands():
    out = run_ct("--help").stdout
    for command in ("info", "tables"):
        assert command in out


def test_tables_list_and_show(ct_home):
    env = {"CT_PLUGINS_HOME": str(ct_home)}
    assert "cgcnn92" in run_ct("tables", "list", env=env).stdout
    show = run_ct("tables", "show", "onehot", env=env).stdout
    assert "100 elements x 100 dims" in show and "sha256:" in show


def test_export_import_round_trip(tmp_path, ct_home):
    env = {"CT_PLUGINS_HOME": str(ct_home)}
    out = tmp_path / "atom_init.json"
    run_ct("tables", "export", "onehot", "--format", "cgcnn", "--out", str(out), env=env)
    assert json.loads(out.read_text())["8"][7] == 1.0
    run_ct("tables", "import", str(out), "--name", "mine", env=env)
    assert "mine" in run_ct("tables", "list", env=env).stdout
    stored = EmbeddingTable.load(ct_home / "tables" / "mine.safetensors")
    np.testing.assert_array_equal(stored.matrix, np.eye(100, dtype=np.float32))


def test_bad_input_gives_a_clear_error(tmp_path, ct_home):
    env = {"CT_PLUGINS_HOME": str(ct_home)}
    missing = run_ct("tables", "show", "no-such-table", env=env, check=False)
    assert missing.returncode == 2 and "no table named 'no-such-table'" in missing.stderr
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a table")
    result = run_ct("tables", "show", str(broken), env=env, check=False)
    assert result.returncode == 2 and "broken.safetensors" in result.stderr
    assert "Traceback" not in result.stderr
