"""Serving and deleting files only from inside one folder (outputs/, in practice).

A path that comes from a job record, a URL or a click is resolved first (``..`` collapsed,
symlinks followed to their real target) and then checked against the folder's own resolved path.
Anything that ends up elsewhere is refused: ``../../etc/passwd``, ``/etc/passwd``, a symlink in
outputs/ pointing out of it, a name with NUL. Backslashes are refused too: on Windows they are
separators, so a name like ``..\\..\\x`` must not mean one thing here and another there.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from backend.errors import UnsafePath

log = logging.getLogger(__name__)


def resolve_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str], *,
                   must_exist: bool = True) -> Path:
    """``path`` resolved, if it lies inside ``folder`` (symlinks included); else UnsafePath.

    A relative ``path`` is taken relative to ``folder``. With ``must_exist`` (the default) the
    target must exist; serving callers should also check it is a file (``is_file``).
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise UnsafePath("paths must be text")
    if not text or "\x00" in text:
        raise UnsafePath("empty path or a path with a NUL character")
    if "\\" in text:
        raise UnsafePath(f"backslash in {text!r}")
    try:
        root = Path(folder).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise UnsafePath(f"the folder {folder} is not there ({exc})") from exc
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=must_exist)
    except (OSError, RuntimeError) as exc:  # missing, unreadable, or a symlink loop
        raise UnsafePath(f"{text!r} cannot be resolved ({exc.__class__.__name__})") from exc
    if resolved == root or not resolved.is_relative_to(root):
        raise UnsafePath(f"{text!r} is outside {root}")
    return resolved


def is_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` exists and resolves inside ``folder``."""
    try:
        resolve_inside(path, folder)
    except UnsafePath:
        return False
    return True


def read_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str], *,
                max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file inside ``folder``.

    Opened without following a final symlink and checked again on the open handle, so a file
    swapped for a symlink between the check and the read is refused, not served.
    """
    resolved = resolve_inside(path, folder)
    # O_NONBLOCK: a FIFO planted in the folder must not hang the server waiting for a writer.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(resolved, flags)
    except OSError as exc:
        raise UnsafePath(f"{resolved} cannot be opened ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{resolved} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnsafePath(f"{resolved} is {info.st_size} bytes; the limit is {max_bytes}")
        return handle.read()


def unlink_inside(path: Path, folder: Path) -> None:
    """Delete ``path`` only if it resolves inside ``folder`` (a record never deletes elsewhere)."""
    try:
        target = resolve_inside(path, folder)
        if target.is_file():
            target.unlink()
    except UnsafePath as exc:
        log.warning("not deleting %s: %s", path, exc)
    except OSError as exc:
        log.warning("could not delete %s: %s", path, exc)
