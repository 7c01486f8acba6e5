"""Method B of the paper's Table 2: element vectors learned by a trained GNN, reused as a table.

Each upstream is trained with its own features on a corpus of OQMD + CMR formation energies
whose reduced formulas are not in any downstream task (the leakage list, :mod:`benchmarks.holdout`), the same
leakage rule the shipped CT tables follow. Its first layer then gives one vector per element:

* CGCNN: ``embedding`` (Linear over the 92-d atom_init features) applied to each element;
* MEGNet: the rows of its learned ``nn.Embedding`` (elements of the corpus only);
* ALIGNN: ``atom_embedding`` (Linear, LayerNorm, SiLU over the 92-d cgcnn features).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.downstream import TASKS, prepare, read_jsonl, reduced_formula, write_jsonl
from benchmarks.holdout import read_holdout
from benchmarks.locks import exclusive
from ct_plugins.tables import EmbeddingTable

if TYPE_CHECKING:  # run.py imports this module
    from benchmarks.run import Scale

PREFIX = "method-b:"  # a Variant.table of "method-b:cgcnn" means: the table learned by CGCNN


def is_method_b(table: str) -> bool:
    return table.startswith(PREFIX)


def learned_path(table: str, work: Path) -> Path:
    """Where the Method B table ``method-b:UPSTREAM`` of a work folder is (once learned)."""
    return work / "method-b" / f"learned-{table.removeprefix(PREFIX)}.safetensors"


def learned_table(table: str, scale: Scale, work: Path) -> Path:
    """Path of the Method B table ``method-b:UPSTREAM``, training its GNN first if needed."""
    upstream = table.removeprefix(PREFIX)
    path = learned_path(table, work)
    with exclusive(path.parent / upstream):
        if not path.is_file():
            _learn(upstream, scale, work / "method-b").save(path)
    return path


def _learn(upstream: str, scale: Scale, folder: Path) -> EmbeddingTable:
    from ct_plugins.training import UPSTREAM_DEFAULT, UpstreamTrainConfig, run

    corpus = corpus_records(scale, folder)
    out = folder / upstream
    metrics = run(UpstreamTrainConfig(
        upstream=upstream, data=str(corpus), target="target", atom_features=UPSTREAM_DEFAULT,
        epochs=scale.epochs[upstream], seed=0, out=str(out), small=scale.small_model,
        overwrite=True,  # a run interrupted before its table was saved
    ))
    vectors = EXTRACTORS[upstream](out, metrics)
    return EmbeddingTable.from_mapping(f"learned-{upstream}", vectors, {
        "description": f"method B: first-layer element vectors of {upstream} trained on "
                       f"{metrics['n_train']} corpus structures (Ef), test MAE "
                       f"{metrics['test_mae']:.4f}",
        "source_data": str(corpus), "metrics": {k: metrics.get(k) for k in RECORDED},
    })


RECORDED = ("test_mae", "val_mae", "n_train", "n_val", "n_test", "epochs", "upstream_version",
            "commit", "dirty", "data_sha256")


def method_b_metrics(variants, scale: Scale, work: Path) -> dict[str, dict]:
    """How each Method B GNN of ``variants`` trained (test MAE, sizes, provenance), for the
    results file: the README quotes these MAEs."""
    found = {}
    for table in sorted({v.table for v in variants if is_method_b(v.table)}):
        path = learned_path(table, work)
        if path.is_file():
            learned = EmbeddingTable.load(path)
            found[table] = {**learned.metadata.get("metrics", {}), "table_sha256": learned.sha256()}
    return found


def corpus_records(scale: Scale, folder: Path) -> Path:
    """OQMD + CMR Ef records without downstream formulas (at smoke scale: the test samples)."""
    path = folder / f"corpus-{scale.name}.jsonl.gz"
    if path.is_file():
        return path
    holdout = set() if scale.smoke else read_holdout()
    records = []
    for task in (TASKS["oqmd-ef"], TASKS["cmr-ef"]):
        prepared = prepare(task, None, scale.smoke, folder)
        records += [r for r in read_jsonl(prepared.path) if reduced_formula(r["formula"]) not in holdout]
    n_max = scale.n_max or len(records)
    write_jsonl(path, sorted(records, key=lambda r: r["id"])[::max(1, len(records) // n_max)][:n_max])
    return path


def _cgcnn_vectors(out: Path, metrics: dict) -> dict[str, np.ndarray]:
    from ct_plugins.adapters.cgcnn import upstream_atom_init
    from ct_plugins.elements import symbol
    from ct_plugins.files import safe_torch_load

    state = safe_torch_load(out / "output_ct" / "best_model.ckpt")["state_dict"]
    weight, bias = state["embedding.weight"].numpy(), state["embedding.bias"].numpy()
    features = json.loads(upstream_atom_init().read_text())
    return {symbol(int(z)): weight @ np.asarray(x, dtype=np.float32) + bias
            for z, x in features.items()}


def _megnet_vectors(out: Path, metrics: dict) -> dict[str, np.ndarray]:
    from matgl.models import MEGNet

    model = MEGNet.load(metrics["model_dir"])
    rows = model.embedding.layer_node_embedding.weight.detach().numpy()
    return dict(zip(model.element_types, rows, strict=True))


def _alignn_vectors(out: Path, metrics: dict) -> dict[str, np.ndarray]:
    import torch
    from alignn.models.utils import MLPLayer
    from jarvis.core.specie import get_node_attributes

    from ct_plugins.adapters.alignn import UPSTREAM_FEATURES
    from ct_plugins.elements import SYMBOLS
    from ct_plugins.files import safe_torch_load

    state = safe_torch_load(Path(metrics["output_dir"]) / "best_model.pt")
    prefix = "atom_embedding."
    layer_state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    hidden, width = layer_state["layer.0.weight"].shape
    layer = MLPLayer(width, hidden)
    layer.load_state_dict(layer_state)
    vectors = {}
    with torch.inference_mode():
        for element in SYMBOLS:
            features = get_node_attributes(element, atom_features=UPSTREAM_FEATURES)
            if features is not None and len(features) == width:
                vectors[element] = layer(torch.as_tensor(features, dtype=torch.float32)).numpy()
    return vectors


EXTRACTORS = {"cgcnn": _cgcnn_vectors, "megnet": _megnet_vectors, "alignn": _alignn_vectors}
