"""One distribution, one import root: `adapters` and `pretrain` live under ct_plugins."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_has_only_the_ct_plugins_root(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("ct_plugins-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"ct_plugins"}
    assert "ct_plugins/adapters/__init__.py" in names
    assert "ct_plugins/pretrain/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[ct_plugins]" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_editable_install_maps_subpackages():
    import ct_plugins.adapters
    import ct_plugins.pretrain

    assert ct_plugins.adapters.__file__.startswith(str(REPO / "adapters"))
    assert ct_plugins.pretrain.__file__.startswith(str(REPO / "pretrain"))
