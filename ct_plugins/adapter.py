"""The contract every upstream adapter implements, built-in or third-party.

An adapter is registered through the ``register_adapters`` hook and is all that ``ct info``,
``ct train NAME`` and ``ct NAME …`` (the upstream's own command line) need: the version check,
the patch, training on a split and, optionally, the upstream command line.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ct_plugins.errors import InputError
from ct_plugins.records import Record
from ct_plugins.table_spec import MODES, Mode, TableSpec
from ct_plugins.tables import EmbeddingTable, Missing

if TYPE_CHECKING:
    from ct_plugins.node_features import NodeFeatureProvider

MISSING_POLICIES: tuple[str, ...] = get_args(Missing)


class UnsupportedUpstreamError(RuntimeError):
    """The upstream package is missing or its version is outside the adapter's tested range."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str
    version: str | None = None


@dataclass(frozen=True)
class EpochScores:
    """One epoch as the upstream reports it (None: the upstream does not measure it)."""

    epoch: int
    train_mae: float | None
    val_mae: float | None


class StopTraining(Exception):
    """Raised by an adapter inside its upstream's training loop when ``TrainJob.should_stop``
    asks for it (early stopping); the same adapter catches it and scores its best model."""


@dataclass(frozen=True)
class TrainJob:
    """What ``ct train`` asks of an adapter: train on this split, score val and test."""

    splits: Mapping[str, Sequence[Record]]  # "train", "val", "test"
    table: EmbeddingTable | None  # None: the upstream's own features, no patch
    mode: Mode
    missing: Missing
    epochs: int
    seed: int
    batch_size: int
    lr: float | None  # None: the upstream's default
    small: bool  # tiny model sizes, for tests and smoke runs
    out: Path  # the adapter's working folder (absolute)
    on_epoch: Callable[[EpochScores], None] = lambda scores: None
    # Per-structure features instead of table rows (table is then None; frozen only).
    node_features: NodeFeatureProvider | None = None
    data_sha256: str | None = None  # of the data the records came from
    cache_dir: Path | None = None  # ct_plugins.cache root for converted data (None: no caching)
    # Early stopping: the runner answers True once validation MAE stopped improving. An adapter
    # with ``supports_early_stopping`` checks it after each reported epoch and ends training.
    should_stop: Callable[[], bool] = lambda: False
    patience: int | None = None  # None: train all ``epochs`` (no early stopping)

    def report_epoch(self, epoch: int, train_mae: float | None, val_mae: float | None) -> None:
        """Adapters call this once per finished epoch (``ct train`` prints it, the demo plots it)."""
        self.on_epoch(EpochScores(epoch, _number_or_none(train_mae), _number_or_none(val_mae)))


@dataclass(frozen=True)
class TrainResult:
    val_mae: float
    test_mae: float
    details: dict[str, Any] = field(default_factory=dict)  # upstream files, element types …


class Adapter(ABC):
    """Plugs an :class:`EmbeddingTable` into one upstream framework's node features.

    Subclasses set the class attributes and implement :meth:`install` (the patch) and
    :meth:`train`; an upstream with its own training command line also sets ``command_line``
    and implements :meth:`run_command_line` and :meth:`command_line_help`.
    """

    name: ClassVar[str]
    upstream: ClassVar[str]  # distribution name on PyPI
    supported: ClassVar[str]  # PEP 440 specifier of tested upstream versions
    summary: ClassVar[str] = ""
    command_line: ClassVar[str] = ""  # the upstream CLI that `ct NAME ARGS` runs; "" for none
    takes_node_features: ClassVar[bool] = False  # True: implements install_node_features
    # True: train() honours TrainJob.should_stop (early stopping) and then scores its best model
    supports_early_stopping: ClassVar[bool] = False

    # --- version check -------------------------------------------------------------------------
    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.upstream)
        except importlib.metadata.PackageNotFoundError:
            return None

    def available(self) -> Availability:
        version = self.installed_version()
        if version is None:
            return Availability(False, f"{self.upstream} is not installed", None)
        if Version(version) not in SpecifierSet(self.supported):
            return Availability(
                False, f"{self.upstream} {version} is outside the supported range {self.supported}",
                version,
            )
        return Availability(True, f"{self.upstream} {version} is supported", version)

    def require(self) -> str:
        """The installed upstream version; raises with the reason when it is unusable."""
        status = self.available()
        if not status.ok:
            raise UnsupportedUpstreamError(
                f"adapter {self.name!r}: {status.reason}. Install a supported version with "
                f"`pip install '{self.upstream}{self.supported}'`."
            )
        return status.version or ""

    # --- the patch -------------------------------------------------------------------------------
    def patch(
        self, table: EmbeddingTable, mode: Mode = "frozen", missing: Missing = "error"
    ) -> contextlib.AbstractContextManager:
        """Make the upstream use ``table`` inside the ``with`` block, restored exactly after.

        ``mode``: ``frozen`` rows are fixed features, ``trainable`` rows initialise a parameter.
        ``missing``: elements the table lacks raise (``error``) or get the ``mean`` / ``zero`` row.
        """
        self.require()
        return self.install(table, check_mode(mode), check_missing(missing))

    def patch_or_upstream(
        self, table: EmbeddingTable | None, mode: Mode = "frozen", missing: Missing = "error"
    ) -> contextlib.AbstractContextManager:
        """The patch, or nothing at all for ``table=None`` (the upstream's own features).

        Baselines then run through the same code path and differ from a table run only here.
        """
        if table is None:
            self.require()
            return contextlib.nullcontext()
        return self.patch(table, mode, missing)

    def patch_node_features(self, provider: NodeFeatureProvider) -> contextlib.AbstractContextManager:
        """Make the upstream use ``provider``'s per-structure features (frozen) inside the block."""
        self.require()
        self.check_node_features(provider)
        return self.install_node_features(provider)

    def check_node_features(self, provider: NodeFeatureProvider) -> None:
        if not self.takes_node_features:
            raise InputError(f"adapter {self.name!r} takes element tables only, not per-structure "
                             f"node features ({provider.name}); use a table spec such as ct-mt")

    def install_node_features(self, provider: NodeFeatureProvider) -> contextlib.AbstractContextManager:
        """The per-structure patch; adapters that set ``takes_node_features = True`` implement it."""
        raise NotImplementedError(f"adapter {self.name!r} has no per-structure node features")

    @abstractmethod
    def install(self, table: EmbeddingTable, mode: Mode, missing: Missing) -> contextlib.AbstractContextManager:
        """The patch itself, called by :meth:`patch` after the version, mode and policy checks."""

    # --- commands --------------------------------------------------------------------------------
    @abstractmethod
    def train(self, job: TrainJob) -> TrainResult:
        """Train the upstream on ``job.splits`` inside ``patch_or_upstream(job.table, …)``.

        Call ``job.report_epoch`` after every epoch; return the MAE of the best model (by
        validation) on the validation and test records. With ``supports_early_stopping``, end
        training once ``job.should_stop()`` is True after an epoch (e.g. raise
        :class:`StopTraining` in an upstream hook and catch it here), then score the best model.
        """

    def run_command_line(
        self, argv: Sequence[str], spec: TableSpec | None, mode: Mode | None, missing: Missing,
        *, node_features: NodeFeatureProvider | None = None,
    ) -> int:
        """``ct NAME ARGV``: the upstream's command line inside the patch.

        ``spec``: ``--atom-features`` (None: the adapter's default); ``mode``: ``--mode`` (None:
        the spec's, else frozen; :meth:`TableSpec.with_mode` combines them). Adapters with
        ``takes_node_features`` may get ``node_features=provider`` instead (then ``spec`` is None).
        """
        raise NotImplementedError(f"adapter {self.name!r} has no upstream command line")

    def command_line_help(self) -> int:
        """Print the upstream command line's own help."""
        raise NotImplementedError(f"adapter {self.name!r} has no upstream command line")


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def check_missing(missing: str) -> Missing:
    if missing not in MISSING_POLICIES:
        raise ValueError(f"unknown missing-element policy {missing!r}; choose one of "
                         f"{', '.join(MISSING_POLICIES)}")
    return missing  # type: ignore[return-value]


def _number_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
