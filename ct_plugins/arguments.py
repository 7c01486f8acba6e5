"""argparse types for numeric options: a bad value is a usage error (exit 2), never a late crash.

Each type checks one rule, e.g. ``--epochs 0`` ("metrics of an untrained model") or
``--epochs -1`` (Lightning reads it as "no limit").
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def positive(text: str) -> float:
    """A finite number > 0 (learning rates, time budgets, bounds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


COUNT = integer(1)  # epochs, batch size, threads, ...
SEED = integer(0)  # numpy seeds must be non-negative


def SEEDS(text: str) -> tuple[int, ...]:  # noqa: N802 - an argparse type, named like COUNT and SEED
    """``--seeds 0,1,2``: one or more distinct seeds >= 0."""
    seeds = tuple(SEED(part.strip()) for part in text.split(","))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"repeated seed in {text!r}")
    return seeds
