from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def conversion_cache(tmp_path_factory) -> Path:
    """The suite never reads or writes the user's ct train cache (~/.ct_plugins/cache): it gets
    its own, shared by every test of the session (subprocesses inherit it)."""
    from ct_plugins.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("ct-cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


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


@pytest.fixture
def ct(capsys, monkeypatch):
    """``ct ARGS`` in this process: the same parser, commands and exit codes as the console
    script, without a fresh interpreter re-importing torch and the upstreams (seconds per call).
    Returns a CompletedProcess with the captured stdout/stderr. Tests of the installed script
    itself, or that need another environment (entry points, PYTHONPATH), use ``run_ct``."""
    import torch

    from ct_plugins.cli import main

    def call(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        threads = torch.get_num_threads()  # commands set torch threads; keep the suite's
        capsys.readouterr()
        with monkeypatch.context() as scope:
            if cwd is not None:
                scope.chdir(cwd)
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse usage errors and --help
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            finally:
                torch.set_num_threads(threads)
        out, err = capsys.readouterr()
        result = subprocess.CompletedProcess(["ct", *args], code, out, err)
        if check and code != 0:
            raise AssertionError(f"ct {' '.join(args)} failed ({code}):\n{out}\n{err}")
        return result

    return call
