"""sha256 of large model files, memoised on disk by (path, size, mtime) so runs don't re-hash."""
from __future__ import annotations

import json
from pathlib import Path

from workbench import settings
from workbench.data import sha256_file


def cached_sha256(path: Path) -> str:
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    db = settings.cache_dir() / "sha256.json"
    try:
        memo = json.loads(db.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = sha256_file(path)
        tmp = db.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, indent=0))
        tmp.replace(db)
    return memo[key]
