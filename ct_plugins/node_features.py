"""Per-structure node features: the contextual alternative to an element table.

A table gives every atom of element Z the same row. A :class:`NodeFeatureProvider` gives each
*site of a given structure* its own vector, e.g. the CrystalTransformer encoder's per-atom output
(the paper's Table 4 "atom+coordinate" row). Providers come from plugins through the
``provide_node_features`` hook, so adapters consume them without importing the model behind them.

Spec grammar on the command line (``--atom-features``), next to the table specs::

    PROVIDER:SOURCE[:frozen]      e.g. ct-encoder:runs/ct-mt-v2/best.pt

Provider features are fixed inputs (frozen): nothing upstream can train a per-structure vector.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pluggy

from ct_plugins.errors import InputError
from ct_plugins.table_spec import MODES, Mode
from ct_plugins.tables import Missing


# Encoders that ship with the package, by name (`ct-encoder:ct-ef-v2`): read here without torch,
# so `ct info` lists them; the pretrain plugin loads them (after a sha256 check).
SHIPPED_ENCODERS = Path(__file__).parent / "encoders"
ENCODER_SUFFIX = ".safetensors"


def shipped_encoders() -> dict[str, dict[str, Any]]:
    """Shipped encoder name -> its manifest entry (sha256, description)."""
    manifest = SHIPPED_ENCODERS / "MANIFEST.json"
    entries = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return {file.removesuffix(ENCODER_SUFFIX): entry for file, entry in entries.items()}


@dataclass(frozen=True)
class NodeFeatureProvider:
    """Per-site features of a structure, as ``features(structure) -> (n_sites, dim)``."""

    name: str  # the spec that made it, e.g. "ct-encoder:runs/v2/best.pt"
    dim: int
    compute: Callable[[Any], np.ndarray] = field(repr=False)  # pymatgen Structure -> rows in site order
    sha256: str = ""  # of the bytes the features come from (a cached run is reused only for these)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    elements: tuple[str, ...] | None = None  # elements it has trained inputs for; None: all

    def features(self, structure: Any) -> np.ndarray:
        """float32 (n_sites, dim), row i for site i; a wrong shape or a NaN is a bug, not data."""
        rows = np.asarray(self.compute(structure), dtype=np.float32)
        if rows.shape != (len(structure), self.dim):
            raise ValueError(f"node features {self.name!r}: got shape {rows.shape} for a structure "
                             f"of {len(structure)} sites, expected ({len(structure)}, {self.dim})")
        if not np.isfinite(rows).all():
            raise ValueError(f"node features {self.name!r}: non-finite values for {structure.formula}")
        return rows


@dataclass(frozen=True)
class ProviderSpec:
    """``PROVIDER:SOURCE[:MODE]`` split into its parts (SOURCE may itself hold colons)."""

    name: str
    source: str
    mode: Mode | None = None


def parse_provider_spec(text: str) -> ProviderSpec:
    """``"ct-encoder:runs/v2/best.pt:frozen"`` -> ``ProviderSpec("ct-encoder", "runs/v2/best.pt", "frozen")``."""
    head, _, tail = str(text).rpartition(":")
    body, mode = (head, tail) if head and tail in MODES else (str(text), None)
    name, _, source = body.partition(":")
    return ProviderSpec(name, source, mode)  # type: ignore[arg-type]


def resolve_node_features(
    spec: str, missing: Missing = "error", mode: Mode | None = None,
    manager: pluggy.PluginManager | None = None,
) -> NodeFeatureProvider | None:
    """The provider a plugin offers for ``spec``, or ``None`` when ``spec`` is a table spec.

    ``mode`` is ``--mode``; a provider is frozen only, so ``trainable`` (here or in the spec)
    is an input error.
    """
    from ct_plugins.plugins import plugin_manager

    parsed = parse_provider_spec(spec)
    provider = (manager or plugin_manager()).hook.provide_node_features(
        name=parsed.name, source=parsed.source, missing=missing)
    if provider is None:
        return None
    if "trainable" in (parsed.mode, mode):
        raise InputError(f"--atom-features {spec}: per-structure node features are frozen only "
                         "(they are computed per structure, there is no row to train); drop trainable")
    return provider
