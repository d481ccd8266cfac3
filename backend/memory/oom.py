"""Recognising and recovering from GPU out-of-memory errors."""

from __future__ import annotations

import gc


def is_oom_error(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError and cuDNN/cuBLAS OOMs that arrive as RuntimeError."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def error_summary(exc: BaseException, limit: int = 200) -> str:
    """First line of an error, short enough for a job record (torch's OOM messages run long)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def free_memory() -> None:
    """Give back what Python and torch's caching allocator hold (call outside any except block)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_initialized():  # never create a CUDA context just to empty it
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
