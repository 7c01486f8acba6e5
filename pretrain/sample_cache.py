"""On-disk cache of loaded samples (.npz, no pickle), keyed by the input files' sha256.

Parsing 27k CIFs and 230k formulas with pymatgen takes about a minute; reading the cache takes
about a second. The cache also stores every cleaning event of the load, so a cached load
reports exactly what an uncached one does. Writes are atomic; an unreadable cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ct_plugins.files import file_sha256
from ct_plugins.pretrain.cleaning_report import CleaningReport, Event
from ct_plugins.pretrain.samples import Sample

log = logging.getLogger(__name__)

CACHE_ENV = "CT_PLUGINS_CACHE"  # overrides ~/.cache/ct_plugins
CACHE_VERSION = 1  # bump when parsing, token order or this format changes


def cache_dir() -> Path:
    """``$CT_PLUGINS_CACHE`` or ``$XDG_CACHE_HOME/ct_plugins`` (default ~/.cache/ct_plugins)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ct_plugins"


def cache_key(files: Iterable[Path | None], *options: object) -> str:
    parts = [file_sha256(Path(f)) if f is not None else "-" for f in files]
    parts += [repr(o) for o in options] + [f"v{CACHE_VERSION}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def cached_samples(key: str, build: Callable[[CleaningReport], list], report: CleaningReport, enabled: bool = True):
    """``build(report)`` once, then the stored result; events are replayed into ``report``."""
    path = cache_dir() / "samples" / f"{key}.npz"
    if enabled and path.is_file():
        try:
            samples, events = _read(path)
        except Exception as error:  # damaged or foreign file: rebuild, never trust it
            log.warning("ignoring unreadable sample cache %s: %s", path, error)
        else:
            report.replay(events)
            return samples
    local = CleaningReport()  # records every event, so they can be stored and replayed
    samples = build(local)
    report.replay(local.log)
    if enabled:
        try:
            _write(path, samples, local.log)
        except OSError as error:  # read-only home etc.: loading still works, only slower
            log.warning("cannot write sample cache %s: %s", path, error)
    return samples


def _write(path: Path, samples: list, events: list[Event]) -> None:
    """Atomic: write a temporary file next to the target, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **_to_arrays(samples), events=np.array(events, dtype=str).reshape(-1, 4))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _to_arrays(samples: list) -> dict[str, np.ndarray]:
    names = sorted({name for s in samples for name in s.targets})
    values = np.array([[s.targets.get(n, np.nan) for n in names] for s in samples], dtype=np.float64)
    structures = [s for s in samples if not s.is_composition]
    return {
        "ids": np.array([s.id for s in samples], dtype=str),
        "sources": np.array([s.source for s in samples], dtype=str),
        "formulas": np.array([s.formula for s in samples], dtype=str),
        "natoms": np.array([len(s.z) for s in samples], dtype=np.int64),
        "z": np.concatenate([s.z for s in samples]) if samples else np.zeros(0, np.int64),
        "is_structure": np.array([not s.is_composition for s in samples], dtype=bool),
        "coords": np.concatenate([s.coords for s in structures]) if structures else np.zeros((0, 3), np.float32),
        "lattices": np.stack([s.lattice for s in structures]) if structures else np.zeros((0, 3, 3), np.float32),
        "target_names": np.array(names, dtype=str),
        "target_values": values.reshape(len(samples), len(names)),
        "target_present": np.array([[n in s.targets for n in names] for s in samples], dtype=bool).reshape(
            len(samples), len(names)
        ),
    }


def _read(path: Path) -> tuple[list, list[Event]]:
    with np.load(path, allow_pickle=False) as data:
        d = {key: data[key] for key in data.files}
    ends = np.cumsum(d["natoms"])
    z = np.split(d["z"], ends[:-1]) if len(ends) else []
    struct_ends = np.cumsum(d["natoms"][d["is_structure"]])
    coords = iter(np.split(d["coords"], struct_ends[:-1]) if len(struct_ends) else [])
    lattices = iter(d["lattices"])
    names = d["target_names"].tolist()
    samples = []
    rows = zip(d["ids"].tolist(), d["sources"].tolist(), d["formulas"].tolist())
    for i, (record_id, source, formula) in enumerate(rows):
        targets = {n: float(v) for n, v, p in zip(names, d["target_values"][i], d["target_present"][i]) if p}
        structure = bool(d["is_structure"][i])
        samples.append(Sample(record_id, source, formula, z[i],
                              next(coords) if structure else None, next(lattices) if structure else None, targets))
    return samples, [tuple(e) for e in d["events"].tolist()]
