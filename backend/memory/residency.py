"""Which resident models must leave before the next one loads.

Models stay loaded across stages and jobs while they fit: a model on the GPU holds its weights in
VRAM, an offloaded one holds them in RAM. Before loading another, the least recently used residents
are unloaded until the newcomer's estimated peak fits beside the ones that stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Held:
    """A resident model as the decision sees it: what it holds between calls."""

    key: str
    vram_gb: float
    ram_gb: float


def to_evict(
    held: Sequence[Held], *, need_vram_gb: float, need_ram_gb: float, vram_budget_gb: float, ram_budget_gb: float
) -> list[str]:
    """Keys to unload, oldest first (``held`` is ordered least recently used first)."""
    kept = list(held)
    evicted: list[str] = []
    while kept and (
        sum(h.vram_gb for h in kept) + need_vram_gb > vram_budget_gb
        or sum(h.ram_gb for h in kept) + need_ram_gb > ram_budget_gb
    ):
        evicted.append(kept.pop(0).key)
    return evicted
