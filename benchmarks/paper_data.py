"""The `paper` scale's MP tasks: MP 2018.6.1 through jarvis-tools' online `megnet` dataset.

`jarvis.db.figshare.data("megnet")` downloads (once, into `store_dir`) the 69,239 MP 2018.6.1
entries the paper trained on: `id` (mp-id), `atoms` (a jarvis Atoms dict), `e_form` (eV/atom),
`gap pbe` (eV). They are converted to the `ct train` jsonl records of the offline tasks (`id`,
`formula`, `cif`, `target`) with the same outlier bounds, and split like the paper:

* with the JARVIS-Leaderboard split file (`megnet_e_form.json.zip` / `megnet_gappbe.json.zip`,
  shipped in ../shared/data/splits): exactly the paper's 60,000 / 5,000 / 4,239 ids (minus
  dropped outliers, counted);
* without it: a seeded (seed 0) 60,000 / 5,000 / rest draw over the same records, recorded as
  such in the results (not the paper's ids).

The same split serves every seed (seeds vary the initialisation), as in the paper. The field
names come from `ct_plugins.pretrain.jarvis_datasets.JARVIS_DATASETS`, which the pretraining
corpus uses to read the same dataset.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.downstream import EF_BOUND, EG_BOUND, SHARED, Prepared, Task, reduced_formula, write_jsonl
from ct_plugins.files import atomic_write_bytes
from ct_plugins.pretrain.jarvis_datasets import JARVIS_DATASETS, paper_split

DATASET = "megnet"
PAPER_SIZES = (60000, 5000)  # train, val; the rest (4,239 in the paper) is the test part
FIELDS = {"mp-ef": "ef", "mp-eg": "eg"}  # task -> JARVIS_DATASETS target key
SPLIT_FILES = {"mp-ef": "megnet_e_form.json.zip", "mp-eg": "megnet_gappbe.json.zip"}
FORMAT = 1  # bump when the converted files change


def download_megnet(store_dir: Path) -> list[dict[str, Any]]:
    """The `megnet` entries (network on first use; jarvis-tools keeps the zip in `store_dir`)."""
    import jarvis.db.figshare as figshare

    store_dir.mkdir(parents=True, exist_ok=True)
    return figshare.data(DATASET, store_dir=str(store_dir))


def prepare_paper(task: Task, cache: Path, split_zip: Path | None = None,
                  download: Callable[[Path], Iterable[dict]] = download_megnet,
                  sizes: tuple[int, int] = PAPER_SIZES) -> Prepared:
    """Write ``<task>-paper.jsonl.gz`` (test part first) and its split file (``split_zip``'s ids,
    or a seeded draw of ``sizes`` without one); reuse them when an earlier call wrote them from
    the same source."""
    path = cache / f"{task.name}-paper.jsonl.gz"
    meta_path = cache / f"{task.name}-paper.meta.json"
    source = {"format": FORMAT, "dataset": DATASET, "split": split_zip.name if split_zip else "seeded-0",
              "sizes": list(sizes)}
    meta = _read_meta(meta_path)
    if meta is not None and meta.get("source") == source and path.is_file():
        return prepared_from(meta, path)
    kept, unlabelled, outliers = megnet_records(task, download(cache / "jarvis"))
    split, not_in_data = split_from_file(kept, split_zip) if split_zip else (seeded_split(kept, sizes), 0)
    by_id = {r["id"]: r for r in kept}
    ordered = [by_id[i] for part in ("test", "val", "train") for i in split[part]]
    write_jsonl(path, ordered)
    split_path = cache / f"{task.name}-paper-split.json"
    atomic_write_bytes(split_path, json.dumps(split).encode())
    test_formulas = sorted({reduced_formula(by_id[i]["formula"]) for i in split["test"]})
    meta = {"source": source, "n_records": len(ordered), "unlabelled": unlabelled, "outliers": outliers,
            "formulas": test_formulas, "n_test": len(split["test"]), "split_file": str(split_path),
            "sizes": {k: len(v) for k, v in split.items()},
            "split_ids_not_in_data": not_in_data}
    atomic_write_bytes(meta_path, json.dumps(meta).encode())  # last: marks the files complete
    return prepared_from(meta, path)


def default_split_zip(task: Task) -> Path | None:
    found = SHARED / "splits" / SPLIT_FILES[task.name]
    return found if found.is_file() else None


def megnet_records(task: Task, entries: Iterable[dict]) -> tuple[list[dict], int, int]:
    """(`ct train` records, unlabelled count, outlier count): a structure the converter cannot
    read counts as unlabelled; the bounds are the offline tasks' (EF_BOUND, EG_BOUND)."""
    id_field, targets = JARVIS_DATASETS[DATASET]
    field = targets[FIELDS[task.name]]
    bound = EF_BOUND if task.unit == "eV/atom" else EG_BOUND
    kept, unlabelled, outliers = [], 0, 0
    for entry in entries:
        target = _number(entry.get(field))
        if target is None:
            unlabelled += 1
            continue
        if abs(target) > bound:
            outliers += 1
            continue
        structure = atoms_to_structure(entry["atoms"])
        kept.append({"id": str(entry[id_field]), "formula": structure.composition.reduced_formula,
                     "cif": structure.to(fmt="cif"), "target": target})
    return kept, unlabelled, outliers


def atoms_to_structure(atoms: dict):
    """A jarvis Atoms dict as a pymatgen Structure (jarvis-tools' own converter)."""
    from jarvis.core.atoms import Atoms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Atoms.from_dict(atoms).pymatgen_converter()


def split_from_file(records: list[dict], split_zip: Path) -> tuple[dict[str, list[str]], int]:
    """The paper's ids where a record exists, and how many split ids have none (dropped
    outliers or unlabelled: counted, not silent)."""
    have = {r["id"] for r in records}
    official = paper_split(split_zip)
    split = {part: [str(i) for i in official.get(part, []) if str(i) in have]
             for part in ("train", "val", "test")}
    missing = sum(len(official.get(p, [])) for p in split) - sum(len(v) for v in split.values())
    return split, missing


def seeded_split(records: list[dict], sizes: tuple[int, int], seed: int = 0) -> dict[str, list[str]]:
    """60,000 / 5,000 / rest by a seeded permutation (no split file: not the paper's exact ids)."""
    import numpy as np

    ids = [r["id"] for r in records]
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val = sizes
    if n_train + n_val >= len(ids):
        raise ValueError(f"{len(ids)} records cannot hold {n_train} train + {n_val} val and a test part")
    return {"train": [ids[i] for i in order[:n_train]],
            "val": [ids[i] for i in order[n_train:n_train + n_val]],
            "test": [ids[i] for i in order[n_train + n_val:]]}


def prepared_from(meta: dict, path: Path) -> Prepared:
    return Prepared(path, meta["n_records"], meta["unlabelled"], meta["outliers"], meta["formulas"],
                    f"jarvis-tools figshare `{DATASET}` (MP 2018.6.1); split: {meta['source']['split']}",
                    meta["n_test"], split_file=meta["split_file"])


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _number(value: Any) -> float | None:
    """jarvis marks missing values "na"; anything not a finite number is unlabelled."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
