"""Parse many CIF/POSCAR texts, optionally in spawned processes (27k CIFs take about a minute)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ct_plugins.elements import UnknownElementError
from ct_plugins.pretrain.cleaning_report import UNKNOWN_ELEMENT, UNPARSABLE_STRUCTURE
from ct_plugins.pretrain.structures import arrays_of, structure_from_text

log = logging.getLogger(__name__)


def _parse_one(item: tuple[str, str, str]) -> tuple[str, Any]:
    """Worker: (id, text, fmt) -> (id, (z, coords, lattice)) or (id, (reason, message))."""
    record_id, text, fmt = item
    try:
        return record_id, arrays_of(structure_from_text(text, fmt))  # type: ignore[arg-type]
    except UnknownElementError as error:
        return record_id, (UNKNOWN_ELEMENT, str(error))
    except Exception as error:
        return record_id, (UNPARSABLE_STRUCTURE, f"{type(error).__name__}: {error}"[:200])


def parse_structures(
    items: Sequence[tuple[str, str, str]], *, workers: int | None = 1, progress: bool = True, desc: str = "parse"
) -> list[tuple[str, Any]]:
    """Parse (id, text, fmt) items, in ``workers`` processes (None: one per core).

    Returns (id, (z, coords, lattice)) or (id, (reason, message)) in input order. Processes are
    spawned (forking a process that already runs torch/OpenMP threads can deadlock), so a
    calling script needs the usual ``if __name__ == "__main__":`` guard; if the pool breaks,
    parsing falls back to this process. One process is the default: the load is cached anyway.
    """
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        if workers > 1:
            try:
                return _parse_in_processes(items, workers, bar)
            except BrokenProcessPool as error:
                log.warning("parallel parsing failed (%s); parsing in this process instead", error)
                bar.reset()
        results = []
        for item in items:
            results.append(_parse_one(item))
            bar.update()
        return results


def _parse_in_processes(items: Sequence[tuple[str, str, str]], workers: int, bar) -> list[tuple[str, Any]]:
    results = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        for result in pool.map(_parse_one, items, chunksize=256):
            results.append(result)
            bar.update()
    return results
