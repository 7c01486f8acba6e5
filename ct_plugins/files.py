"""Small file helpers shared by tables, checkpoints and reports."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ct_plugins.errors import CheckpointError, InputError


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write via a temp file in the same folder, fsync, then rename: never a half-written file."""
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return stream_sha256(handle)


def stream_sha256(handle: BinaryIO) -> str:
    """sha256 of a binary stream, read in 1 MiB blocks (corpus files reach gigabytes)."""
    import hashlib

    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _unsupported_global(error: Exception) -> str:
    """``: os.system`` from torch's long message, naming what the file wanted to run."""
    import re

    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(error))
    return f": {found.group(1)}" if found else ""


def json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` that never runs code from the file: tensors and plain data only."""
    import torch

    # weights_only: a checkpoint is a file a user hands us, and a pickle could run code.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: not safe to load (it holds objects besides tensors and "
                              f"plain data{_unsupported_global(error)}); refusing to unpickle it") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:  # truncated or not a torch file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(error).splitlines()[0]})") from error


RUN_MARKER = ".ct-run"  # marks a folder a ct command created, so --overwrite may clear it


def check_output_folder(path: Path, overwrite: bool, option: str = "--out") -> None:
    """Fail before any work when ``path`` is a file, or holds files and ``overwrite`` is off."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file; give a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{option} {path} is not empty; pass --overwrite to replace its run, "
                         "or choose a new folder")
    if not any((path / name).is_file() for name in (RUN_MARKER, "metrics.json")):
        # never delete a folder we did not create
        raise InputError(f"{option} {path} is not empty and not a ct run folder; "
                         "--overwrite clears only ct run folders: choose a new folder")


def fresh_output_folder(path: Path, overwrite: bool, option: str = "--out") -> Path:
    """An empty, marked run folder: a run never reports a model or metrics of an earlier one."""
    import shutil

    check_output_folder(path, overwrite, option)
    if path.is_dir() and any(path.iterdir()):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_MARKER).write_text("created by ct-plugins; --overwrite may delete this folder\n")
    return path


def open_text(path: Path):
    """A text file, gunzipped on the fly when its name ends in ``.gz``."""
    import gzip

    return gzip.open(path, "rt", encoding="utf-8") if Path(path).suffix == ".gz" else open(path, encoding="utf-8")
