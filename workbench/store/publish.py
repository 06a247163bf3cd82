"""What the run store and the artifact store share: safe ids, atomic JSON, one numpy-aware JSON
converter, file digests, and publishing a staged directory into place with one rename."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.errors import StoreError, describe_os_error

PARTIAL = ".partial"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_id(value: str, what: str = "run id", error: type[StoreError] = StoreError) -> str:
    """Reject ids that could escape a store (path separators, '..', empty, hidden)."""
    if not isinstance(value, str) or not _ID.match(value) or ".." in value:
        raise error(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only")
    return value


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays, tuples, Paths and non-string keys made plain JSON, recursively."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(x) for x in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(x) for k, x in value.items()}
    return value


def json_default(obj: Any) -> Any:
    """`json.dump(default=...)` for numpy values and paths."""
    converted = to_jsonable(obj)
    if converted is obj:
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
    return converted


@contextlib.contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """OSError while writing -> StoreError naming `what` and the cause (a full disk said plainly)."""
    try:
        yield
    except OSError as exc:
        raise StoreError(describe_os_error(exc, what)) from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temp file + rename so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, default=json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_json(path: Path, what: str) -> Any:
    """The JSON in `path`, or StoreError naming the file (missing, unreadable, corrupt)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{what}: {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{what}: cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise StoreError(f"{what}: {path} is corrupt ({exc})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digests(directory: Path, names: list[str]) -> dict[str, str]:
    """name -> sha256 of each file, recorded in a manifest so edits and damage can be detected."""
    return {name: sha256_file(directory / name) for name in names}


def verify_digests(directory: Path, recorded: dict[str, str], what: str) -> list[str]:
    """Problems (one line each) with the files whose digests a manifest recorded; [] if all match."""
    problems = []
    for name, digest in sorted(recorded.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{what}: {name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{what}: {name} does not match its recorded sha256 (edited or damaged)")
    return problems


def ensure_root(root: Path, what: str) -> None:
    """Create a store root, or StoreError if it is a file, under a file, or not writable."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"{what} {root} is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {what} {root}: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise StoreError(f"{what} {root} is not writable")


def fresh_staging(root: Path, entry_id: str) -> Path:
    """An empty `root/.partial/<id>` to write an entry into before it is published."""
    path = root / PARTIAL / entry_id
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def publish_dir(staging: Path, final: Path) -> None:
    """Move a fully written entry into place in one rename (a reader sees all of it or nothing)."""
    if final.exists():
        raise StoreError(f"{final.name} already exists in {final.parent}")
    os.replace(staging, final)
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
