"""MemoryManager without real pipelines: residency decisions and the OOM step-down loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from backend.errors import OutOfMemoryAfterAllPlans
from backend.memory.hardware import detect_hardware
from backend.memory.manager import MemoryManager
from backend.memory.plans import MemoryPlan
from backend.memory.residency import Held, to_evict
from backend.models.registry import MODELS

SDXL, SVD, COG = MODELS["sdxl-base"], MODELS["svd-xt"], MODELS["cogvideox-5b-i2v"]


class FakePipe:
    def __init__(self, key: str) -> None:
        self.key = key
        self.freed_hooks = 0

    def maybe_free_model_hooks(self) -> None:
        self.freed_hooks += 1


class Recorder:
    """Loader and placer doubles: count loads, remember levels, never touch a GPU."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.placed: list[str] = []

    def load(self, ref: Any, root: Path, *, dtype: Any) -> FakePipe:
        self.loads.append(ref.key)
        return FakePipe(ref.key)

    def place(self, pipe: FakePipe, plan: MemoryPlan) -> FakePipe:
        self.placed.append(plan.level)
        return pipe


def manager(vram: float, ram: float = 64) -> tuple[MemoryManager, Recorder]:
    recorder = Recorder()
    hardware = detect_hardware(vram_gb=vram, ram_gb=ram)
    return MemoryManager(hardware, Path("unused"), placer=recorder.place, loader=recorder.load), recorder


# --- residency --------------------------------------------------------------------------------------


def test_models_stay_resident_when_they_fit() -> None:
    memory, rec = manager(80)
    for ref in (SDXL, SVD, SDXL, SVD):
        memory.pipeline(ref, memory.plan(ref))
    assert rec.loads == ["sdxl-base", "svd-xt"]  # the cache keyed by model + plan served the rest
    assert memory.resident() == ["sdxl-base", "svd-xt"]


def test_previous_model_is_unloaded_when_both_do_not_fit() -> None:
    memory, rec = manager(12)
    memory.pipeline(SDXL, memory.plan(SDXL))
    memory.pipeline(SVD, memory.plan(SVD))
    assert memory.resident() == ["svd-xt"]
    memory.pipeline(SDXL, memory.plan(SDXL))
    assert memory.resident() == ["sdxl-base"] and rec.loads == ["sdxl-base", "svd-xt", "sdxl-base"]


def test_offloaded_models_stay_while_ram_allows() -> None:
    memory, _ = manager(8, ram=64)  # both offloaded: weights live in RAM
    memory.pipeline(SDXL, memory.plan(SDXL))
    memory.pipeline(SVD, memory.plan(SVD))
    assert memory.resident() == ["sdxl-base", "svd-xt"]
    small, _ = manager(8, ram=12)
    small.pipeline(SDXL, small.plan(SDXL))
    small.pipeline(SVD, small.plan(SVD))
    assert small.resident() == ["svd-xt"]


def test_least_recently_used_goes_first() -> None:
    memory, _ = manager(48)
    memory.pipeline(SDXL, memory.plan(SDXL))
    memory.pipeline(SVD, memory.plan(SVD))
    memory.pipeline(SDXL, memory.plan(SDXL))  # touch SDXL: SVD is now the oldest
    memory.pipeline(COG, memory.plan(COG))
    assert "svd-xt" not in memory.resident() and memory.resident()[-1] == COG.key


def test_another_plan_for_the_same_model_reloads_it() -> None:
    memory, rec = manager(80)
    gpu = memory.plan(SVD)
    memory.pipeline(SVD, gpu)
    memory.pipeline(SVD, gpu.step_down())
    assert rec.loads == ["svd-xt", "svd-xt"] and rec.placed == ["gpu", "model_offload"]
    assert memory.resident() == ["svd-xt"]


def test_after_job_keeps_residents_and_release_drops_them() -> None:
    memory, _ = manager(80)
    memory.pipeline(SDXL, memory.plan(SDXL))
    memory.after_job()
    assert memory.resident() == ["sdxl-base"]
    memory.release()
    assert memory.resident() == []


def test_to_evict_pure_decision() -> None:
    held = [Held("a", 6, 0), Held("b", 4, 2)]
    assert to_evict(held, need_vram_gb=5, need_ram_gb=0, vram_budget_gb=20, ram_budget_gb=10) == []
    assert to_evict(held, need_vram_gb=12, need_ram_gb=0, vram_budget_gb=20, ram_budget_gb=10) == ["a"]
    assert to_evict(held, need_vram_gb=1, need_ram_gb=9, vram_budget_gb=20, ram_budget_gb=10) == ["a", "b"]


# --- OOM escalation ---------------------------------------------------------------------------------


def oom_then_ok(failures: int, error: BaseException | None = None):
    calls: list[str] = []

    def work(pipe: FakePipe, plan: MemoryPlan) -> str:
        calls.append(plan.level)
        if len(calls) <= failures:
            raise error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return f"done at {plan.level}"

    return work, calls


def test_oom_steps_down_one_level_and_records_it() -> None:
    memory, rec = manager(80)
    work, calls = oom_then_ok(1)
    steps: list[dict] = []
    assert memory.run(SVD, work, steps=steps) == "done at model_offload"
    assert calls == ["gpu", "model_offload"] and rec.placed == ["gpu", "model_offload"]
    (step,) = steps
    assert step.kind == "step_down" and step.model == "svd-xt" and "out of memory" in step.error
    assert (step.from_plan["level"], step.to_plan["level"]) == ("gpu", "model_offload")
    assert step.to_plan["forward_chunking"] and memory.resident() == ["svd-xt"]


def test_runtime_error_saying_out_of_memory_counts() -> None:
    memory, _ = manager(80)
    work, calls = oom_then_ok(2, RuntimeError("CUDA error: out of memory\nCUDA kernel errors ..."))
    steps: list[dict] = []
    memory.run(SVD, work, steps=steps)
    assert calls == ["gpu", "model_offload", "group_offload"] and len(steps) == 2
    assert steps[0].error == "CUDA error: out of memory"


def test_other_errors_propagate_untouched() -> None:
    memory, _ = manager(80)
    work, _ = oom_then_ok(1, RuntimeError("shape mismatch"))
    steps: list[dict] = []
    with pytest.raises(RuntimeError, match="shape mismatch"):
        memory.run(SVD, work, steps=steps)
    assert steps == [] and memory._resident["svd-xt"].pipe.freed_hooks == 1


def test_fails_with_what_was_tried_after_the_lowest_level() -> None:
    memory, _ = manager(80)
    work, calls = oom_then_ok(99)
    steps: list[dict] = []
    with pytest.raises(OutOfMemoryAfterAllPlans) as failure:
        memory.run(SVD, work, steps=steps)
    assert calls == ["gpu", "model_offload", "group_offload", "fp8_group_offload", "sequential_offload"]
    assert len(steps) == 4
    message = str(failure.value)
    for level in calls:
        assert level in message
    assert "lower the resolution" in message and "LTX-Video 2B" in message
    assert len(failure.value.tried) == 5 and memory.resident() == []


def test_cpu_plans_cannot_step_down() -> None:
    memory, _ = manager(0)
    work, _ = oom_then_ok(1)
    with pytest.raises(OutOfMemoryAfterAllPlans, match="cpu"):
        memory.run(SVD, work, steps=[])


def test_start_plan_can_be_pinned() -> None:
    memory, rec = manager(8)
    work, calls = oom_then_ok(0)
    memory.run(SVD, work, steps=[], plan=MemoryPlan("group_offload", "cuda", "bfloat16", model="svd-xt"))
    assert calls == ["group_offload"] and rec.placed == ["group_offload"]
