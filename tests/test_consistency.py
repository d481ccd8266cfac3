"""Keyframe consistency on the tiny SDXL: each mode runs, the record says which and why, the cached
pipeline is put into exactly each job's state, and the IP-Adapter path stays bfloat16.

The tiny models have random weights: these tests prove the plumbing (adapter loaded, reference used,
seeds shared, state reset), never that the keyframes look consistent.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.errors import SpecError
from backend.jobs.admission import admit
from backend.memory import MemoryManager, detect_hardware
from backend.models.ip_adapter import ip_adapter_for
from backend.prompting import analyze_prompt
from backend.record import Storyboard, StoryboardFrame
from backend.seeds import derive_seed
from backend.spec import JobSpec
from backend.stages import keyframes
from backend.stages.context import StageContext
from backend.stages.keyframe_style import IP_ADAPTER_SCALE, choose_consistency

pytestmark = pytest.mark.tiny

PROMPTS = ["a red fox sits in a snowy field", "a red fox leaps over a snowy field",
           "a red fox lands in deep snow"]


def tiny_spec(**changes) -> JobSpec:
    values = dict(prompt="a red fox leaps over a snowy field", model_set="tiny", seed=11, steps=2, keyframes=3)
    values.update(changes)
    return JobSpec(**values).validate()


def board(spec: JobSpec, count: int = 3) -> Storyboard:
    return Storyboard(frames=[StoryboardFrame(float(i), PROMPTS[i], seed=derive_seed(spec.seed, "keyframe", i))
                              for i in range(count)])


@pytest.fixture(scope="module")
def manager(tmp_path_factory) -> MemoryManager:
    from backend.paths import runtime_paths

    memory = MemoryManager(detect_hardware(), runtime_paths().models)
    yield memory
    memory.release()


def run_keyframes(folder: Path, memory, spec: JobSpec, count: int = 3) -> keyframes.KeyframeResult:
    ctx = StageContext("job", "keyframes", spec, folder, threading.Event(), lambda *args: None, memory)
    return keyframes.run(ctx, keyframes.KeyframeInputs(analyze_prompt(spec.prompt), board(spec, count),
                                                       motion_aspect=2.0))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("mode", ["ip-adapter", "img2img", "independent"])
def test_each_mode_runs_and_the_record_says_which(tmp_path, manager, mode):
    spec = tiny_spec(consistency=mode)
    result = run_keyframes(tmp_path / "work", manager, spec)
    record = result.record
    assert all(p.is_file() for p in result.paths) and len(result.paths) == 3
    assert record.consistency == mode and record.consistency_detail["reason"] == "asked for"
    shared = derive_seed(spec.seed, "keyframe", 0)
    if mode == "img2img":
        assert record.img2img_strength == keyframes.IMG2IMG_STRENGTH
        assert record.seeds == [derive_seed(spec.seed, "keyframe", i) for i in range(3)]
    else:  # each keyframe from its own prompt, all from the same noise
        assert record.img2img_strength is None and record.seeds == [shared] * 3
    if mode == "ip-adapter":
        assert record.consistency_detail["scale"] == IP_ADAPTER_SCALE
        assert record.consistency_detail["reference_keyframe"] == 0
        assert record.consistency_detail["adapter"] == "tiny-ip-adapter"
    assert record.loras is None


def test_keyframe_0_is_the_plain_model_and_later_ones_follow_the_reference(tmp_path, manager):
    """With the adapter at scale 0 keyframe 0 is exactly what text alone draws; later keyframes change."""
    plain = run_keyframes(tmp_path / "independent", manager, tiny_spec(consistency="independent"))
    adapted = run_keyframes(tmp_path / "ip", manager, tiny_spec(consistency="ip-adapter"))
    assert np.array_equal(pixels(plain.paths[0]), pixels(adapted.paths[0]))
    assert np.abs(pixels(plain.paths[1]) - pixels(adapted.paths[1])).mean() > 0.5
    # Same seed, different prompts: not copies of keyframe 0 either.
    assert np.abs(pixels(adapted.paths[0]) - pixels(adapted.paths[1])).mean() > 0.5


def test_a_cached_pipeline_is_put_into_exactly_each_jobs_state(tmp_path, manager):
    before = run_keyframes(tmp_path / "a", manager, tiny_spec(consistency="independent"))
    run_keyframes(tmp_path / "b", manager, tiny_spec(consistency="ip-adapter"))
    pipe = manager._resident["tiny-sdxl"].pipe
    assert pipe.image_encoder is not None and pipe.unet.encoder_hid_proj is not None
    after = run_keyframes(tmp_path / "c", manager, tiny_spec(consistency="independent"))
    assert manager._resident["tiny-sdxl"].pipe is pipe  # the same loaded pipeline, adapter taken out again
    assert pipe.image_encoder is None and pipe.unet.encoder_hid_proj is None
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(before.paths, after.paths))
    img2img = run_keyframes(tmp_path / "d", manager, tiny_spec(consistency="img2img"))
    assert img2img.record.consistency == "img2img" and pipe.image_encoder is None


def test_auto_uses_the_tiny_twin_and_falls_back_to_img2img_without_real_weights(tmp_path, manager):
    tiny = choose_consistency(tiny_spec(), tmp_path, strength=0.55)
    assert tiny.mode == "ip-adapter" and tiny.adapter == ip_adapter_for("tiny")
    real = choose_consistency(tiny_spec(model_set="default"), tmp_path / "no-models", strength=0.55)
    assert real.mode == "img2img" and "not downloaded" in real.reason and real.adapter is None
    single = choose_consistency(tiny_spec(consistency="ip-adapter"), tmp_path, strength=0.55, count=1)
    assert single.mode == "independent" and single.adapter is None
    result = run_keyframes(tmp_path / "work", manager, tiny_spec())
    assert result.record.consistency == "ip-adapter" and result.record.consistency_detail["reason"].startswith("auto")


def test_an_explicit_ip_adapter_without_weights_is_refused_before_the_queue(tmp_path):
    from backend.models import store
    from backend.models.registry import MODELS

    for ref in MODELS.values():  # every diffusers pipeline is there: only the adapter is missing
        if not ref.is_tiny:
            (tmp_path / ref.key).mkdir()
            (tmp_path / ref.key / "model_index.json").write_text("{}")
            store.write_marker(tmp_path / ref.key, ref)
    gpu = detect_hardware(vram_gb=24, ram_gb=64)
    spec = JobSpec(prompt="a red fox", consistency="ip-adapter")
    with pytest.raises(SpecError) as caught:
        admit(spec, models_root=tmp_path, hardware=gpu)
    assert caught.value.field == "consistency" and "models download ip-adapter-sdxl" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert admit(replace(spec, consistency="auto"), models_root=tmp_path, hardware=gpu).consistency == "auto"
    assert admit(replace(spec, model_set="tiny"), models_root=tmp_path).model_set == "tiny"


def test_seeds_a_user_chose_are_kept_in_shared_seed_modes():
    spec = tiny_spec()
    frames = board(spec).frames
    frames[2].seed = 1234  # regenerated with a new seed while reviewing
    frames.insert(0, StoryboardFrame(0.0, "the user's image", seed=None, source="start image"))
    seeds = keyframes.keyframe_seeds(spec.seed, Storyboard(frames=frames), shared=True)
    assert seeds[0] is None and seeds[3] == 1234
    assert seeds[1] != seeds[2] or seeds[1] == derive_seed(spec.seed, "keyframe", 0)


class Bf16Memory:
    """The real memory manager with every plan in bfloat16 (what a GPU plan would say)."""

    def __init__(self, manager: MemoryManager) -> None:
        self.manager = manager
        self.models_root = manager.models_root

    def plan(self, ref, workload=None):
        return replace(self.manager.plan(ref, workload), dtype="bfloat16")

    def run(self, ref, work, *, steps, workload=None, plan=None):
        return self.manager.run(ref, work, steps=steps, plan=replace(plan or self.plan(ref, workload),
                                                                     dtype="bfloat16"))


def test_the_ip_adapter_path_stays_bfloat16(tmp_path):
    from backend.paths import runtime_paths

    manager = MemoryManager(detect_hardware(), runtime_paths().models)
    try:
        result = run_keyframes(tmp_path / "work", Bf16Memory(manager), tiny_spec(consistency="ip-adapter"))
        assert result.record.memory_plan["dtype"] == "bfloat16" and all(p.is_file() for p in result.paths)
        pipe = manager._resident["tiny-sdxl"].pipe
        dtypes = {p.dtype for component in pipe.components.values() if isinstance(component, torch.nn.Module)
                  for p in component.parameters() if p.is_floating_point()}
        assert dtypes == {torch.bfloat16} and pipe.image_encoder is not None
    finally:
        manager.release()


def test_the_adapter_loads_into_a_group_offloaded_pipeline_and_is_grouped_too(tmp_path):
    """Group offloading (CPU to CPU here) was placed before the adapter came: its new parts get grouped."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    from backend.models.loader import load_pipeline
    from backend.models.registry import MODELS
    from backend.paths import runtime_paths
    from backend.stages.keyframe_style import prepare_consistency

    root = runtime_paths().models
    pipe = load_pipeline(MODELS["tiny-sdxl"], root, dtype=torch.float32)
    pipe.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"),
                              offload_type="block_level", num_blocks_per_group=1)
    prepare_consistency(pipe, choose_consistency(tiny_spec(consistency="ip-adapter"), root, strength=0.55), root)
    assert _is_group_offload_enabled(pipe.image_encoder) and _is_group_offload_enabled(pipe.unet)
    pipe.set_ip_adapter_scale(IP_ADAPTER_SCALE)
    image = pipe(prompt="a red fox", width=128, height=64, num_inference_steps=2, output_type="np",
                 ip_adapter_image=Image.new("RGB", (64, 64), (200, 40, 40))).images[0]
    assert image.shape == (64, 128, 3)
    prepare_consistency(pipe, choose_consistency(tiny_spec(consistency="img2img"), root, strength=0.55), root)
    assert pipe.image_encoder is None and _is_group_offload_enabled(pipe.unet)
