"""SHA-256 of a file, read in blocks and remembered per (path, size, modification time): a LoRA, a keyframe
or a weights file is hashed once however often the record names it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def file_sha256(path: Path | str) -> str:
    info = Path(path).stat()
    return _sha256(str(path), info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
