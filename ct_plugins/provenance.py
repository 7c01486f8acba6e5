"""What produced a result: the code (commit, uncommitted changes), the runtime and the data bytes."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

from ct_plugins.files import file_sha256, stream_sha256

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def git_commit() -> str:
    """``git rev-parse HEAD`` of the source tree, or "unknown" outside a git checkout."""
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else "unknown"


def git_dirty() -> bool | None:
    """True when tracked files differ from the commit (the result may not be reproducible from
    the commit alone); None outside a git checkout."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def code_provenance() -> dict:
    return {"commit": git_commit(), "dirty": git_dirty()}


def runtime_versions() -> dict[str, str]:
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": str(torch.__version__),  # TorchVersion: not plain data
            "numpy": numpy.__version__}


def data_sha256(path: str | Path) -> str:
    """sha256 of the records in a data file (decompressed: gzip headers carry a timestamp), or
    of a folder's files (relative names and bytes, in sorted order)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gz":
        import gzip

        with gzip.open(path, "rb") as handle:
            return stream_sha256(handle)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()
