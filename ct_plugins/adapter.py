"""The interface every upstream adapter implements."""

from __future__ import annotations

import contextlib
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ct_plugins.tables import EmbeddingTable

Mode = Literal["frozen", "trainable"]
MODES: tuple[str, ...] = ("frozen", "trainable")


class UnsupportedUpstreamError(RuntimeError):
    """The upstream package is missing or its version is outside the adapter's tested range."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str
    version: str | None = None


class Adapter(ABC):
    """Plugs an :class:`EmbeddingTable` into one upstream framework's node features.

    Subclasses set the class attributes and implement :meth:`patch`, a context manager that
    changes only the upstream feature initialiser and restores it exactly on exit.
    """

    name: ClassVar[str]
    upstream: ClassVar[str]  # distribution name on PyPI
    supported: ClassVar[str]  # PEP 440 specifier of tested upstream versions
    summary: ClassVar[str] = ""

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

    @abstractmethod
    def patch(self, table: EmbeddingTable, mode: Mode = "frozen") -> contextlib.AbstractContextManager:
        """Make the upstream use ``table`` (as fixed features or a trainable init) inside the block."""

    @contextlib.contextmanager
    def _nothing(self) -> Iterator[None]:  # for adapters whose patch is a no-op in some mode
        yield
