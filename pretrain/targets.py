"""Pretraining targets: labels read from the data (``ef``, ``eg``, or a user file's columns) and
the ``metal`` target derived from a sample's band gap.

``metal`` is 1.0 when the sample's Eg label is at most :data:`METAL_GAP_EV`, else 0.0; a sample
has it exactly when it has an Eg label, so it needs no data field of its own. It is learnt as a
binary classification (BCE on a logit), not as a standardised regression: ~46% of MP gaps and
88-93% of perovskite gaps are exact zeros (docs/band-gaps.md), which an L1 head on Eg alone
treats as just one more value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

METAL = "metal"
METAL_GAP_EV = 1e-3  # a gap at or below this counts as zero (metal); benchmarks/gap_sets.py uses it too
DERIVED_FROM = {METAL: "eg"}  # derived target -> the data label it is computed from
BINARY_TARGETS = frozenset({METAL})


def target_label(labels: Mapping[str, float], target: str) -> float | None:
    """The value of ``target`` for a sample with data labels ``labels``; None when it has none."""
    source = DERIVED_FROM.get(target, target)
    value = labels.get(source)
    if value is None or not math.isfinite(float(value)):
        return None
    if target == METAL:
        return 1.0 if float(value) <= METAL_GAP_EV else 0.0
    return float(value)


def is_binary(task: str) -> bool:
    """True for the head of a binary target (``metal`` or ``metal@SOURCE``)."""
    return task.split("@", 1)[0] in BINARY_TARGETS


def data_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """The labels a corpus must read for ``targets`` (``metal`` needs ``eg``), in order, once each."""
    return tuple(dict.fromkeys(DERIVED_FROM.get(t, t) for t in targets))
