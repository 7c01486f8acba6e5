"""JARVIS-tools figshare datasets (MP 2018.6.1 as ``megnet``, JARVIS-DFT) and official splits."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ct_plugins.pretrain.cleaning_report import CleaningReport
from ct_plugins.pretrain.samples import Sample
from ct_plugins.pretrain.structures import sample_from_record

JARVIS_DATASETS: dict[str, tuple[str, dict[str, str]]] = {  # dataset -> (id field, targets)
    "megnet": ("id", {"ef": "e_form", "eg": "gap pbe"}),
    "dft_3d": ("jid", {"ef": "formation_energy_peratom", "eg": "optb88vdw_bandgap"}),
}



def jarvis_online_samples(
    dataset: str = "megnet",
    split_file: Path | None = None,
    *,
    parts: Collection[str] = ("train",),
    target_keys: Mapping[str, str] | None = None,
    store_dir: Path | None = None,
    report: CleaningReport | None = None,
    progress: bool = True,
) -> list[Sample]:
    """Structures + targets from jarvis-tools' figshare datasets (needs network the first time).

    ``megnet`` is MP 2018.6.1 (e_form, gap pbe), ``dft_3d`` is JARVIS-DFT (OptB88vdW). With a
    ``split_file`` (e.g. ``splits/megnet_e_form.json.zip``) only ids in ``parts`` of the official
    split are kept: pretraining on ``train`` leaves the paper's val/test untouched.
    """
    import jarvis.db.figshare as figshare
    from tqdm.auto import tqdm

    if dataset not in JARVIS_DATASETS:
        raise ValueError(f"unknown jarvis dataset {dataset!r}; supported: {', '.join(JARVIS_DATASETS)}")
    id_field, default_targets = JARVIS_DATASETS[dataset]
    target_keys = target_keys or default_targets
    report = report if report is not None else CleaningReport()
    keep = _split_ids(split_file, parts) if split_file is not None else None
    source = f"jarvis_{dataset}"
    samples = []
    for entry in tqdm(figshare.data(dataset, store_dir=store_dir), desc=dataset, disable=not progress, leave=False):
        record_id = str(entry.get(id_field))
        if keep is not None and record_id not in keep:
            continue
        record = {"id": record_id, "source": source, "atoms": entry.get("atoms"),
                  "targets": {name: entry.get(key) for name, key in target_keys.items()}}
        sample = sample_from_record(record, report=report)
        if sample is not None:
            samples.append(sample)
    return samples


def paper_split(split_zip: Path) -> dict[str, list[str]]:
    """The official split (JARVIS-Leaderboard file): ``{"train": [ids], "val": [...], "test": [...]}``.

    For ``megnet_e_form.json.zip`` this is the paper's 60,000 / 5,000 / 4,239 MP split.
    """
    return {part: list(values) for part, values in read_split(split_zip).items()}


def read_split(split_zip: Path) -> dict[str, dict[str, Any]]:
    """A JARVIS-Leaderboard split file as stored: ``{part: {id: target}}`` (targets may be strings)."""
    with zipfile.ZipFile(split_zip) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")]
        if len(names) != 1:
            raise ValueError(f"{split_zip}: expected one .json file inside, found {names}")
        return json.loads(archive.read(names[0]))


def _split_ids(split_file: Path, parts: Collection[str]) -> set[str]:
    split = paper_split(split_file)
    unknown = set(parts) - set(split)
    if unknown:
        raise ValueError(f"{split_file} has parts {sorted(split)}, not {sorted(unknown)}")
    return {record_id for part in parts for record_id in split[part]}
