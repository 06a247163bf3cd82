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



def describe_os_error(exc: OSError, what: str = "") -> str:
    """An OSError in one line, a full disk or a file-size limit said plainly; `what` names what was being written."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        cause = "no space left on the device"
    elif exc.errno == errno.EFBIG:
        cause = "file too large (the disk is full or a file-size limit was reached)"
    else:
        cause = exc.strerror or str(exc)
        if what:
            return f"cannot write {what}: {cause}"
    if what:
        return f"{cause} while writing {what}"
    return f"{cause}: {exc.filename}" if exc.filename else cause
