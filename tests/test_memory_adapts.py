"""Memory that adapts, driven through the real MemoryManager by a fake CUDA memory layer.

The fake GPU counts what each placed pipeline holds against a budget and raises CUDA's own
out-of-memory message when a placement or a call would go over it: out of memory while loading, room
made by unloading other models, the level that worked remembered for the next job, a plan over the
available RAM refused, and free memory read again before each stage.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend.errors import NotEnoughRam
from backend.memory import manager as manager_module
from backend.memory.hardware import detect_hardware
from backend.memory.manager import MemoryManager
from backend.memory.plans import MemoryPlan
from backend.memory.remembered import RememberedLevels
from backend.models.registry import MODELS

pytestmark = pytest.mark.unit

SDXL, SVD, COG = MODELS["sdxl-base"], MODELS["svd-xt"], MODELS["cogvideox-5b-i2v"]
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


class FakeGpu:
    """Pipelines placed on it hold their plan's estimated VRAM until released; over budget is an OOM."""

    def __init__(self, budget_gb: float, *, oom_at_load: set[str] = frozenset()) -> None:
        self.budget_gb, self.oom_at_load = budget_gb, set(oom_at_load)
        self.held: dict[int, float] = {}
        self.placed: list[tuple[str, str]] = []

    def load(self, ref: Any, root: Path, *, dtype: Any) -> "FakePipe":
        return FakePipe(ref.key, self)

    def place(self, pipe: "FakePipe", plan: MemoryPlan) -> "FakePipe":
        self.placed.append((pipe.key, plan.level))
        if plan.level in self.oom_at_load or sum(self.held.values()) + plan.est_vram_gb > self.budget_gb:
            raise RuntimeError(OOM)  # moving the weights to the GPU ran out, as torch says it
        self.held[id(pipe)] = plan.est_vram_gb
        pipe.plan = plan
        return pipe


class FakePipe:
    def __init__(self, key: str, gpu: FakeGpu) -> None:
        self.key, self.gpu, self.plan = key, gpu, None

    def maybe_free_model_hooks(self) -> None:
        pass

    def __del__(self) -> None:
        self.gpu.held.pop(id(self), None)


def make(tmp_path: Path, gpu: FakeGpu, vram: float = 24, ram: float = 64) -> MemoryManager:
    return MemoryManager(detect_hardware(vram_gb=vram, ram_gb=ram), Path("unused"), placer=gpu.place,
                         loader=gpu.load, remembered=RememberedLevels(tmp_path / "levels.json"))


def test_out_of_memory_while_loading_steps_down_and_the_job_is_done(tmp_path):
    gpu = FakeGpu(budget_gb=100, oom_at_load={"gpu"})
    memory = make(tmp_path, gpu)
    steps: list = []
    result = memory.run(SVD, lambda pipe, plan: plan.level, steps=steps)
    assert result == "model_offload" and [s.kind for s in steps] == ["step_down"]
    assert gpu.placed == [("svd-xt", "gpu"), ("svd-xt", "model_offload")]


def test_another_resident_model_is_unloaded_before_stepping_down(tmp_path):
    gpu = FakeGpu(budget_gb=20)
    memory = make(tmp_path, gpu, vram=80)  # the planner thinks both fit; the real card says no
    memory.pipeline(SDXL, memory.plan(SDXL))
    steps: list = []
    level = memory.run(SVD, lambda pipe, plan: plan.level, steps=steps)
    assert [s.kind for s in steps] == ["evict"] and "sdxl-base" in steps[0].action
    assert level == "gpu" and memory.resident() == ["svd-xt"]  # same plan, no step-down needed


def test_the_next_job_of_the_same_shape_starts_at_the_level_that_worked(tmp_path):
    first = FakeGpu(budget_gb=100, oom_at_load={"gpu"})
    make(tmp_path, first).run(SVD, lambda pipe, plan: None, steps=[])
    second = FakeGpu(budget_gb=100)  # a fresh process, the same machine and the same remembered levels
    make(tmp_path, second).run(SVD, lambda pipe, plan: None, steps=[])
    assert second.placed == [("svd-xt", "model_offload")]  # no failing its way down again
    other_shape = FakeGpu(budget_gb=100)
    make(tmp_path, other_shape).run(SDXL, lambda pipe, plan: None, steps=[])
    assert other_shape.placed == [("sdxl-base", "gpu")]  # only that model at that size is remembered


def test_a_plan_over_the_available_ram_is_refused_in_one_sentence(tmp_path):
    memory = make(tmp_path, FakeGpu(budget_gb=100), ram=4)
    plan = replace(memory.plan(SVD), est_ram_gb=12.0)
    with pytest.raises(NotEnoughRam) as info:
        memory.run(SVD, lambda pipe, p: None, steps=[], plan=plan)
    message = str(info.value)
    assert "12 GB of system RAM" in message and "4 GB is available" in message and "\n" not in message


def test_free_vram_is_read_again_before_a_stage(tmp_path, monkeypatch):
    gpu = FakeGpu(budget_gb=100)
    real = replace(detect_hardware(vram_gb=24, ram_gb=64), simulated=False)
    memory = MemoryManager(real, Path("unused"), placer=gpu.place, loader=gpu.load)
    memory.pipeline(SDXL, memory.plan(SDXL))
    held = memory._resident["sdxl-base"].vram_gb
    before = memory.plan(COG).level
    # Another program took memory since start-up: the driver now reports 3 GB free.
    monkeypatch.setattr(manager_module, "refreshed", lambda profile: replace(profile, vram_free_gb=3.0))
    memory.refresh()
    assert memory.hardware.vram_free_gb == pytest.approx(3.0 + held)  # what we hold is still ours to plan
    after = memory.plan(COG).level
    assert (before, after) == ("model_offload", "group_offload")  # CogVideoX now plans for what is free


def test_the_preflight_says_what_this_gpu_needed_last_time(tmp_path):
    from backend.memory.preflight import preflight
    from backend.spec import JobSpec

    memory = make(tmp_path, FakeGpu(budget_gb=100, oom_at_load={"gpu"}))
    memory.run(SVD, lambda pipe, plan: None, steps=[])
    spec = JobSpec(prompt="waves", engine="svd").validate()
    motion = preflight(spec, memory.hardware, memory.remembered).stage("motion")
    assert motion.level == "model_offload"
    assert "last time on this GPU Stable Video Diffusion XT needed model offload" in motion.warnings
    assert preflight(spec, memory.hardware).stage("motion").level == "gpu"  # without the memory of it
