"""The one exception family the CLI turns into a single clear line and a non-zero exit."""
from __future__ import annotations


class WorkbenchError(Exception):
    """A problem with the user's input or environment, with a message that names it."""

    exit_code = 2


class ModelError(WorkbenchError):
    """Unknown model spec, or a missing/corrupt model file."""


class DataError(WorkbenchError):
    """Missing benchmark file or malformed row."""


class TaskError(WorkbenchError):
    """Unknown task or suite, or a task that cannot be built."""


class StoreError(WorkbenchError):
    """Unknown or invalid run id, or a run that is not in the state asked for."""
