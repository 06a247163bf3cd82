"""sha256 of large model files, memoised on disk by (path, size, mtime) so runs don't re-hash.

One small file per key (a sidecar under the cache dir), written by rename: concurrent processes never
lose each other's entries, and a torn write is never read.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from workbench import settings
from workbench.store.publish import sha256_file


def cached_sha256(path: Path) -> str:
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    memo = settings.cache_dir() / "sha256" / f"{key}.txt"
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = sha256_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(memo)
    except OSError:  # a read-only cache only costs the re-hash next time
        pass
    return digest
