"""The memory level that worked last time, per GPU, model and workload: the next job starts there.

A job that had to step down (an out-of-memory error at the planned level) teaches the studio about this
machine: the same model at the same size on the same GPU starts at the level that succeeded, instead of
failing its way down again. Kept as a small JSON file beside the job database.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from backend.memory.estimates import Workload
from backend.memory.hardware import HardwareProfile
from backend.memory.plans import LEVELS, MemoryPlan
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)


class RememberedLevels:
    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None

    def key(self, hardware: HardwareProfile, ref: ModelRef, workload: Workload) -> str:
        gpu = f"{hardware.gpu_name}|{hardware.vram_total_gb:.0f}GB" if hardware.has_cuda else "cpu"
        return f"{gpu}|{ref.key}|{workload.width}x{workload.height}x{workload.frames}"

    def level(self, key: str) -> str | None:
        return self._read().get(key)

    def start_at(self, key: str, plan: MemoryPlan) -> MemoryPlan:
        """``plan`` stepped down to the remembered level when that is lower (never up: memory may be scarcer)."""
        remembered = self.level(key)
        if remembered not in LEVELS or plan.level not in LEVELS:
            return plan
        while LEVELS.index(plan.level) < LEVELS.index(remembered):
            lower = plan.step_down()
            if lower is None:
                break
            plan = lower
        return plan

    def remember(self, key: str, plan: MemoryPlan) -> None:
        """Keep the level that succeeded; a failure to write is only logged (a hint, not a record)."""
        if self.path is None or plan.level not in LEVELS:
            return
        levels = self._read()
        if levels.get(key) == plan.level:
            return
        levels[key] = plan.level
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(levels, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not remember the memory level of %s (%s)", key, exc.strerror or exc)

    def _read(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
