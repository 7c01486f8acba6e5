"""ALIGNN (PyPI ``alignn``): embedding tables as the atom features of the real ``train_alignn``.

Upstream takes node features from ``jarvis.core.specie.get_node_attributes(element,
atom_features)``, imported at module level in ``alignn/graphs.py`` and inside a function in
``alignn/torch_graph_builder.py``; ``TrainingConfig.atom_features`` is a ``Literal`` of the four
jarvis names and ``model.atom_input_features`` is a separate config value. Inside the patch:

* ``get_node_attributes`` (both import sites) answers the table's rows for the table's names
  (``"ct"``, ``"ct-mt"``, ``"ct-mt:trainable"``, ``"cgcnn92"`` …) and defers to jarvis for
  everything else;
* ``alignn.config.TrainingConfig`` (and the name in ``alignn.train_alignn``) is a subclass that
  accepts those names and sets ``model.atom_input_features`` to the feature width;
* ``trainable`` only: the data carry one-hot element codes and each ALIGNN model class puts
  ``TableRows`` (an embedding parameter initialised from the table) in front of its own
  ``atom_embedding`` MLP. That wrapper is the least invasive trainable form: the model's first
  layer keeps its upstream type and size (table dim → hidden), only its input changes.

Per-structure node features (``--atom-features ct-encoder:CHECKPOINT``, frozen only): the
config's ``atom_features`` is the provider's name, ``get_node_attributes`` answers a placeholder
of its width for it, and ``alignn.torch_graph_builder.build_pure_torch_graph`` (looked up at call
time by ``alignn.graphs``) is wrapped so each graph's ``atom_features`` become the provider's
rows for that structure (jarvis Atoms -> pymatgen, same site order). Graphs are built once per
structure before training, so the rows are computed once.

``train_alignn`` asks for standardised atom features unless they are ``"cgcnn"``, but in
alignn 2026.8.11 ``get_train_val_loaders`` ignores that flag (the standardiser call is commented
out), so table rows reach the model unchanged; use ``NAME:std`` for z-scored rows. Trainable
codes would survive a standardisation anyway (argmax).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import runpy
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ct_plugins.adapter import Adapter, Mode, TrainJob, TrainResult, check_missing, check_mode
from ct_plugins.adapters._common import covered_elements, init_then, onehot_rows, swapped
from ct_plugins.errors import InputError
from ct_plugins.node_features import NodeFeatureProvider
from ct_plugins.registry import load_table
from ct_plugins.table_spec import TableSpec, parse_table_spec
from ct_plugins.tables import EmbeddingTable, Missing

JARVIS_FEATURES = ("basic", "atomic_number", "cfid", "cgcnn")
UPSTREAM_FEATURES = "cgcnn"  # alignn's own default atom_features
UPSTREAM_DEFAULT_CONFIG = "alignn/examples/sample_data/config_example.json"  # train_alignn's
MODEL_MODULES = {  # class name -> module; only importable ones are patched
    "ALIGNNAtomWisePure": "alignn.models.alignn_atomwise_pure",
    "ALIGNNAtomWisePureSmooth": "alignn.models.alignn_atomwise_pure_smooth",
    "ALIGNNAtomWise": "alignn.models.alignn_atomwise",
    "ALIGNN": "alignn.models.alignn",
}


class ALIGNNAdapter(Adapter):
    name = "alignn"
    upstream = "alignn"
    supported = ">=2026.8,<2026.9"  # = the `alignn` extra in pyproject.toml (a test checks)
    summary = ("ALIGNN: atom_features from the table (config names like \"ct\"), trainable rows; "
               "per-structure node features (ct-encoder:CHECKPOINT, frozen)")
    command_line = "python -m alignn.train_alignn"
    takes_node_features = True

    def install(self, table: EmbeddingTable, mode: Mode, missing: Missing) -> contextlib.AbstractContextManager:
        return _patched(table, mode, missing, feature_names(table, mode))

    def patch_answering(
        self, names: Sequence[str], table: EmbeddingTable, mode: Mode = "frozen",
        missing: Missing = "error",
    ) -> contextlib.AbstractContextManager:
        """:meth:`patch` that also answers the config's ``atom_features`` texts ``names``
        (``"ct"``, ``"ct-mt:std:trainable"`` …); the table's own name always works."""
        self.require()
        mode, missing = check_mode(mode), check_missing(missing)
        return _patched(table, mode, missing, feature_names(table, mode, names))

    def install_node_features(self, provider: NodeFeatureProvider) -> contextlib.AbstractContextManager:
        return _patched_sites(provider)

    def train(self, job: TrainJob) -> TrainResult:
        return train_split(job)

    def run_command_line(self, argv: Sequence[str], spec: TableSpec | None, mode: Mode | None,
                         missing: Missing, *, node_features: NodeFeatureProvider | None = None) -> int:
        if node_features is not None:
            return _run_with_node_features(argv, node_features)
        return run_from_command_line(argv, spec, mode, missing)

    def command_line_help(self) -> int:
        return run_cli_unpatched(["--help"])


def feature_names(table: EmbeddingTable, mode: Mode, extra: Sequence[str] = ()) -> frozenset[str]:
    names = {table.name, f"{table.name}:{mode}", *extra}
    clash = names & set(JARVIS_FEATURES)
    if clash:
        raise ValueError(f"atom_features name(s) {sorted(clash)} belong to jarvis; rename the table")
    return frozenset(names)


@contextlib.contextmanager
def _patched(
    table: EmbeddingTable, mode: Mode, missing: Missing, names: frozenset[str]
) -> Iterator[None]:
    vectors = _vectors(table, mode, missing)

    def answer(species: str):
        if species not in vectors:
            table.rows([species])  # raises the table's own "not covered" error
        return vectors[species]

    width = len(next(iter(vectors.values())))
    with contextlib.ExitStack() as stack:
        _answer_feature_names(stack, names, answer, width)
        if mode == "trainable":
            for cls in _model_classes():
                init = _trainable_init(cls, table, missing, width)
                stack.enter_context(swapped(cls, "__init__", init))
        yield


def _answer_feature_names(stack: contextlib.ExitStack, names: frozenset[str], answer, width: int) -> None:
    """``get_node_attributes`` answers ``answer(species)`` for the config names ``names`` (jarvis
    for any other), and TrainingConfig accepts those names with input width ``width``."""
    import alignn.config
    import alignn.graphs
    import jarvis.core.specie

    original = jarvis.core.specie.get_node_attributes

    @functools.wraps(original)  # same name, docstring and default (``"atomic_number"``)
    def get_node_attributes(species: str, atom_features: str = "atomic_number"):
        if atom_features not in names:
            return original(species, atom_features=atom_features)
        return answer(species)

    config_cls = _config_class(alignn.config.TrainingConfig, names, width)
    stack.enter_context(swapped(jarvis.core.specie, "get_node_attributes", get_node_attributes))
    stack.enter_context(swapped(alignn.graphs, "get_node_attributes", get_node_attributes))
    stack.enter_context(swapped(alignn.config, "TrainingConfig", config_cls))
    if "alignn.train_alignn" in sys.modules:
        trainer_module = sys.modules["alignn.train_alignn"]
        stack.enter_context(swapped(trainer_module, "TrainingConfig", config_cls))


@contextlib.contextmanager
def _patched_sites(provider: NodeFeatureProvider) -> Iterator[None]:
    """Graphs whose config names ``provider`` get its per-site rows as ``atom_features``."""
    import inspect

    import alignn.torch_graph_builder
    import numpy as np
    import torch

    original = alignn.torch_graph_builder.build_pure_torch_graph
    signature = inspect.signature(original)
    placeholder = np.zeros(provider.dim)  # replaced below, once the structure is known

    @functools.wraps(original)
    def build_pure_torch_graph(*args, **kwargs):
        built = original(*args, **kwargs)
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        if call.arguments["atom_features"] == provider.name:
            graph = built[0] if isinstance(built, tuple) else built
            old = graph.ndata["atom_features"]
            rows = provider.features(call.arguments["atoms"].pymatgen_converter())
            graph.ndata["atom_features"] = torch.as_tensor(rows, dtype=old.dtype, device=old.device)
        return built

    with contextlib.ExitStack() as stack:
        _answer_feature_names(stack, frozenset({provider.name}), lambda species: placeholder, provider.dim)
        stack.enter_context(swapped(alignn.torch_graph_builder, "build_pure_torch_graph", build_pure_torch_graph))
        yield


def _vectors(table: EmbeddingTable, mode: Mode, missing: Missing) -> dict:
    """symbol -> feature vector served to the graph builders (rows, or one-hot codes)."""
    symbols = covered_elements(table, missing)
    values = table.rows(symbols, missing) if mode == "frozen" else onehot_rows(len(symbols))
    return {s: v.astype("float64") for s, v in zip(symbols, values)}


def _config_class(base: type, names: frozenset[str], width: int) -> type:
    from pydantic import model_validator

    class TrainingConfig(base):  # type: ignore[misc, valid-type]
        """Upstream TrainingConfig that also accepts the active table's atom_features names."""

        atom_features: str = "cgcnn"

        @model_validator(mode="after")
        def _table_features(self):
            if self.atom_features in names:
                self.model.atom_input_features = width
            elif self.atom_features not in JARVIS_FEATURES:
                raise ValueError(
                    f"atom_features {self.atom_features!r} is neither a jarvis name "
                    f"{JARVIS_FEATURES} nor the active table ({', '.join(sorted(names))})"
                )
            return self

    TrainingConfig.__module__ = base.__module__
    return TrainingConfig


def _model_classes() -> list[type]:
    found = []
    for name, module in MODEL_MODULES.items():
        try:
            found.append(getattr(importlib.import_module(module), name))
        except Exception:  # noqa: BLE001 - DGL-based models fail to import without dgl
            continue
    return found


def _trainable_init(cls: type, table: EmbeddingTable, missing: Missing, width: int):
    rows = table.rows(covered_elements(table, missing), missing)

    def after(model, *args, **kwargs) -> None:
        if model.config.atom_input_features != width:
            return  # a model for jarvis features, built while the patch is active
        from ct_plugins.adapters._modules import with_trainable_rows

        first = type(model.atom_embedding)(table.dim, model.config.hidden_features)
        model.atom_embedding = with_trainable_rows(first, rows)

    return init_then(vars(cls)["__init__"], after)


# --- ct alignn: the upstream command line inside the patch ------------------------------------
def run_cli(argv: Sequence[str], table: EmbeddingTable | None, mode: Mode, missing: Missing = "error",
            names: Sequence[str] = ()) -> int:
    """``python -m alignn.train_alignn ARGV`` in-process, inside the patch."""
    if table is None:
        ADAPTER.require()
        return run_cli_unpatched(argv)
    with ADAPTER.patch_answering(names, table, mode, missing):
        return run_cli_unpatched(argv)


def run_from_command_line(argv: Sequence[str], spec: TableSpec | None, mode: Mode | None,
                          missing: Missing) -> int:
    """``ct alignn <train_alignn arguments> [--atom-features SPEC]``.

    Without ``--atom-features`` the name comes from the config file's ``atom_features``; a jarvis
    name there runs upstream unpatched. With it, a copy of the config carrying that name is used.
    """
    argv = list(argv)
    config = _read_config_and_check_root(argv)
    text = str(spec) if spec else config.get("atom_features", "cgcnn")
    if text in JARVIS_FEATURES:
        print(f"ct alignn: atom_features {text!r} is upstream's own; running train_alignn unpatched")
        return run_cli_unpatched(argv)
    spec = parse_table_spec(text).with_mode(mode)
    chosen = spec.mode or "frozen"
    table = load_table(spec)
    print(f"ct alignn: train_alignn with table {table.name!r} ({len(table)} x {table.dim}), {chosen}")
    with tempfile.TemporaryDirectory() as tmp:
        if config.get("atom_features") != text:
            argv = _with_config_copy(argv, config, text, Path(tmp))
        return run_cli(argv, table, chosen, missing, names=(text, spec.table, str(spec)))


def _run_with_node_features(argv: Sequence[str], provider: NodeFeatureProvider) -> int:
    """``ct alignn <train_alignn arguments> --atom-features ct-encoder:CHECKPOINT``."""
    argv = list(argv)
    config = _read_config_and_check_root(argv)
    ADAPTER.require()
    print(f"ct alignn: train_alignn with per-structure node features {provider.name!r} (dim {provider.dim}), frozen")
    with tempfile.TemporaryDirectory() as tmp, _patched_sites(provider):
        return run_cli_unpatched(_with_config_copy(argv, config, provider.name, Path(tmp)))


def _with_config_copy(argv: list[str], config: dict, atom_features: str, folder: Path) -> list[str]:
    """``argv`` pointing at a copy of ``config`` (written in ``folder``) that names ``atom_features``."""
    copy = folder / "config.json"
    copy.write_text(json.dumps({**config, "atom_features": atom_features}, indent=2))
    return _with_option(argv, "--config_name", str(copy))


def _read_config_and_check_root(argv: list[str]) -> dict:
    root = _option(argv, "--root_dir")
    if root is not None and not Path(root).is_dir():
        raise InputError(f"--root_dir {root}: no such folder")
    return read_config(_option(argv, "--config_name"))


def read_config(name: str | None) -> dict:
    """The train_alignn config; upstream's default path is relative to alignn's source tree,
    so ``ct alignn`` asks for one explicitly."""
    if name is None:
        raise InputError("ct alignn needs --config_name CONFIG.json (a train_alignn config; its "
                         f"default {UPSTREAM_DEFAULT_CONFIG} exists only in alignn's source tree)")
    try:
        config = json.loads(Path(name).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"--config_name {name}: cannot read the config ({error})") from error
    if not isinstance(config, dict):
        raise InputError(f"--config_name {name}: expected a JSON object")
    return config


def run_cli_unpatched(argv: Sequence[str]) -> int:
    with swapped(sys, "argv", ["train_alignn", *argv]):
        try:
            runpy.run_module("alignn.train_alignn", run_name="__main__", alter_sys=False)
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _with_option(argv: list[str], name: str, value: str) -> list[str]:
    def ours(i: int, arg: str) -> bool:
        return arg == name or arg.startswith(name + "=") or (i > 0 and argv[i - 1] == name)

    out = [a for i, a in enumerate(argv) if not ours(i, a)]
    return [*out, name, value]


# --- ct train alignn --------------------------------------------------------------------------
def train_split(job: TrainJob) -> TrainResult:
    """Write the upstream folder (POSCARs in train/val/test order + id_prop.csv + config.json
    with ``keep_data_order`` and explicit sizes, so alignn keeps our split) and run train_alignn."""
    import csv

    out, table = job.out, job.table
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "id_prop.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        for name in ("train", "val", "test"):
            for record in job.splits[name]:
                file = f"{_safe(record.id)}.vasp"
                record.structure.to(filename=str(folder / file), fmt="poscar")
                writer.writerow([file, repr(record.target)])
    name = _features_name(job)
    sizes = {k: len(v) for k, v in job.splits.items()}
    config = training_config(job, name, sizes, out / "alignn")
    if name == UPSTREAM_FEATURES:  # upstream's config does not infer the input width from its features
        config["model"]["atom_input_features"] = upstream_feature_width()
    (out / "config.json").write_text(json.dumps(config, indent=2))
    argv = ["--root_dir", str(folder), "--config_name", str(out / "config.json"),
            "--output_dir", str(out / "alignn"), "--target_key", "target", "--device", "cpu"]
    sites = contextlib.nullcontext() if job.node_features is None else _patched_sites(job.node_features)
    with contextlib.chdir(out), _epoch_losses(job), sites:  # alignn writes LMDB caches into the cwd
        code = run_cli(argv, table, job.mode, job.missing, names=(name,))
    if code:
        raise RuntimeError(f"train_alignn exited with status {code}")
    results = out / "alignn"
    test_csv = results / "prediction_results_test_set.csv"
    return TrainResult(_val_mae(results), _csv_mae(test_csv),
                       {"batch_size_used": config["batch_size"], "output_dir": str(results)})


def _features_name(job: TrainJob) -> str:
    """The config's ``atom_features``: a provider's or a table's name, or upstream's own."""
    if job.node_features is not None:
        return job.node_features.name
    return UPSTREAM_FEATURES if job.table is None else f"{job.table.name}:{job.mode}"


@contextlib.contextmanager
def _epoch_losses(job: TrainJob) -> Iterator[None]:
    """Hand alignn's per-epoch graph L1 losses (train and validation MAE) to ``job.report_epoch``.

    ``alignn.train`` prints them through ``print_train_val_loss(e, total, graph, …, val_total,
    val_graph, …)`` once per epoch; the wrapper passes the call on unchanged.
    """
    import alignn.train

    original = alignn.train.print_train_val_loss

    @functools.wraps(original)
    def print_train_val_loss(e, running_loss, running_loss1, *rest, **kwargs):
        job.report_epoch(int(e) + 1, running_loss1, rest[5] if len(rest) > 5 else None)
        return original(e, running_loss, running_loss1, *rest, **kwargs)

    with swapped(alignn.train, "print_train_val_loss", print_train_val_loss):
        yield


def upstream_feature_width() -> int:
    from jarvis.core.specie import get_node_attributes

    return len(get_node_attributes("H", atom_features=UPSTREAM_FEATURES))


def training_config(job: TrainJob, atom_features: str, sizes: dict, output_dir: Path) -> dict:
    """An upstream config.json for a graph-level regression with the DGL-free model."""
    small = dict(alignn_layers=1, gcn_layers=1, embedding_features=16, hidden_features=16,
                 edge_input_features=16, triplet_input_features=8)
    return {
        "dataset": "user_data", "target": "target", "id_tag": "jid",
        "atom_features": atom_features, "neighbor_strategy": "pure_torch",
        "random_seed": job.seed, "keep_data_order": True,
        "n_train": sizes["train"], "n_val": sizes["val"], "n_test": sizes["test"],
        # upstream drops incomplete batches (drop_last) in training and validation
        "epochs": job.epochs, "batch_size": min(job.batch_size, sizes["train"], sizes["val"]),
        "learning_rate": job.lr if job.lr is not None else 1e-3,
        "num_workers": 0, "write_predictions": True, "output_dir": str(output_dir),
        "filename": "ct", "progress": False,
        "model": {"name": "alignn_atomwise_pure", "output_features": 1,
                  "calculate_gradient": False, "gradwise_weight": 0.0,
                  **(small if job.small else {})},
    }


def _safe(record_id: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", record_id)


def _csv_mae(path: Path) -> float:
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return sum(abs(float(r["target"]) - float(r["prediction"])) for r in rows) / len(rows)


def _val_mae(output_dir: Path) -> float:
    """From upstream's Val_results.json (validation predictions of the best epoch)."""
    import numpy as np

    batches = json.loads((output_dir / "Val_results.json").read_text())
    targets = np.concatenate([np.ravel(b["target_out"]) for b in batches])
    predictions = np.concatenate([np.ravel(b["pred_out"]) for b in batches])
    return float(np.abs(targets - predictions).mean())


ADAPTER = ALIGNNAdapter()
