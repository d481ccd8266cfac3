"""bfloat16 on the CPU through the stage code: how GPU-only dtype bugs are caught without a GPU.

diffusers' ``from_pipe`` casts the components it shares to float32 unless told the dtype; on a GPU that
doubles SDXL's memory after the first keyframe. Here the tiny models run in bfloat16 through the
keyframe stage (txt2img, then img2img via ``from_pipe``) and the LTX motion engine, and every weight
must still be bfloat16 afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from backend.memory import MemoryManager, detect_hardware
from backend.memory.plans import MemoryPlan
from backend.models.registry import MODELS
from backend.prompting import analyze_prompt
from backend.record import Storyboard, StoryboardFrame
from backend.spec import JobSpec
from backend.stages import keyframes, motion
from backend.stages.context import StageContext

pytestmark = pytest.mark.tiny


class Bf16Memory:
    """The real memory manager, with every plan in bfloat16 (what a GPU plan would say)."""

    def __init__(self, manager: MemoryManager) -> None:
        self.manager = manager

    def plan(self, ref, workload=None) -> MemoryPlan:
        return replace(self.manager.plan(ref, workload), dtype="bfloat16")

    def run(self, ref, work, *, steps, workload=None, plan=None):
        return self.manager.run(ref, work, steps=steps, plan=replace(plan or self.plan(ref, workload),
                                                                     dtype="bfloat16"))


def weight_dtypes(pipe) -> set[torch.dtype]:
    return {p.dtype for component in pipe.components.values() if isinstance(component, torch.nn.Module)
            for p in component.parameters() if p.is_floating_point()}


@pytest.fixture
def memory(studio_home) -> Bf16Memory:
    manager = MemoryManager(detect_hardware(), studio_home.models)
    yield Bf16Memory(manager)
    manager.release()


def context(tmp_path, stage: str, memory: Bf16Memory, spec: JobSpec) -> StageContext:
    return StageContext("job", stage, spec, tmp_path / "work", threading.Event(), lambda *args: None, memory)


def test_keyframes_and_ltx_motion_stay_bfloat16(tmp_path, memory):
    spec = JobSpec(prompt="a red fox runs across a snowy field", model_set="tiny", seed=5, engine="ltx",
                   duration=1, fps=24, keyframes=3).validate()
    analysis = analyze_prompt(spec.prompt)
    kf = keyframes.run(context(tmp_path, "keyframes", memory, spec),
                       keyframes.KeyframeInputs(analysis, _storyboard(3), motion_aspect=96 / 64))
    assert len(kf.paths) == 3 and kf.record.memory_plan["dtype"] == "bfloat16"
    sdxl = memory.manager._resident["tiny-sdxl"].pipe  # img2img (from_pipe) ran for keyframes 2 and 3
    assert weight_dtypes(sdxl) == {torch.bfloat16}

    choice = motion.choose_motion("tiny", "ltx", "standard", 24, detect_hardware())
    choice = replace(choice, plan=replace(choice.plan, dtype="bfloat16"))
    moved = motion.run(context(tmp_path, "motion", memory, spec),
                       motion.MotionInputs(analysis, kf.paths, 24, choice))
    assert sum(len(clip) for clip in moved.segments) == 24 and moved.record.memory_plan["dtype"] == "bfloat16"
    ltx = memory.manager._resident[MODELS["tiny-ltx"].key].pipe
    assert weight_dtypes(ltx) == {torch.bfloat16}


def _storyboard(count: int) -> Storyboard:
    return Storyboard(frames=[StoryboardFrame(float(i), f"a red kite over a beach, moment {i}") for i in range(count)])
