from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def ct_home(tmp_path, monkeypatch) -> Path:
    """An empty user table folder, so tests never see or touch the user's imported tables."""
    monkeypatch.setenv("CT_PLUGINS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run_ct(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `ct` console script as a user would."""
    ct = Path(sys.executable).with_name("ct")
    result = subprocess.run(
        [str(ct), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ct {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
