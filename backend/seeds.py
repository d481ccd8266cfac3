"""Per-stage seeds derived from the job seed, so every stage is reproducible on its own."""

from __future__ import annotations

import hashlib
from typing import Any


def derive_seed(job_seed: int | None, *labels: object) -> int:
    """A stable 32-bit seed for one unit of work (e.g. ("keyframe", 2)) of the job."""
    if job_seed is None:
        raise ValueError("the job seed must be set before stages run")
    text = ":".join(str(part) for part in (job_seed, *labels))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def torch_generator(seed: int | None) -> Any:
    """A CPU generator: diffusers draws the initial noise on it, so results match across devices."""
    import torch

    generator = torch.Generator("cpu")
    if seed is not None:
        generator.manual_seed(seed)
    return generator
