"""The one error type the ``ct`` command turns into a one-line message and exit status 2."""

from __future__ import annotations


class InputError(ValueError):
    """Something the user can fix: a bad file, argument or output folder, or a run that
    produced no model. The message names the file or option and the fix."""


class CheckpointError(InputError):
    """A checkpoint that is not readable, not ours, or would need unsafe unpickling to load."""


class TrainingFailed(InputError):
    """Training ended without a usable model (no checkpoint saved, NaN metrics)."""
