"""LoRA files on the tiny models: applied and recorded with their SHA-256, exactly the requested adapters
on a cached pipeline, and files that are not LoRAs for the model refused at submit with one sentence.

The LoRAs are built here, offline: PEFT adapters with random (non-zero) weights on the tiny SDXL UNet and
the tiny LTX transformer, saved by diffusers in its LoRA format.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ui_support import studio_home  # noqa: F401 - the UI test's fixture

from backend.errors import LoraError, SpecError
from backend.memory import MemoryManager, detect_hardware
from backend.models import loras
from backend.models.loader import load_pipeline
from backend.models.registry import MODELS
from backend.paths import REPO_ROOT
from backend.prompting import analyze_prompt
from backend.record import Storyboard, StoryboardFrame
from backend.spec import JobSpec, LoraChoice
from backend.stages import keyframes
from backend.stages.context import StageContext
from backend.stages.keyframe_style import apply_loras

pytestmark = pytest.mark.tiny

TINY_MODELS = REPO_ROOT / "models" / "tiny"


def peft_lora(model: torch.nn.Module, targets: list[str], seed: int = 0) -> dict[str, torch.Tensor]:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False))
    return get_peft_model_state_dict(model)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    """A models folder of its own (the LoRAs land in its loras/), sharing the cached tiny models."""
    root = tmp_path_factory.mktemp("models")
    (root / "tiny").symlink_to(TINY_MODELS, target_is_directory=True)
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    from backend.models.tiny import ensure_tiny_model

    folder = ensure_tiny_model("sdxl", root)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet")
    StableDiffusionXLPipeline.save_lora_weights(root / "loras", weight_name="style.safetensors",
                                                unet_lora_layers=peft_lora(unet, ["to_q", "to_k", "to_v", "to_out.0"]))
    # A LoRA for another model: the same kind of UNet, but with 48-wide text features and wider blocks.
    config = dict(UNet2DConditionModel.load_config(folder / "unet"), cross_attention_dim=48,
                  block_out_channels=(32, 96), projection_class_embeddings_input_dim=80)
    other = UNet2DConditionModel.from_config(config)
    StableDiffusionXLPipeline.save_lora_weights(root / "loras", weight_name="other-model.safetensors",
                                                unet_lora_layers=peft_lora(other, ["to_k", "to_v"]))
    from safetensors.torch import save_file

    save_file({"weight": torch.randn(8, 8), "bias": torch.randn(8)}, str(root / "loras" / "random.safetensors"))
    save_file({"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.randn(4, 4096),
               "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.randn(4096, 4)},
              str(root / "loras" / "t5-style.safetensors"))
    return root


def storyboard(spec: JobSpec, count: int) -> Storyboard:
    return Storyboard(frames=[StoryboardFrame(float(i), f"{spec.prompt}, moment {i}") for i in range(count)])


def keyframe_images(tmp: Path, memory: MemoryManager, spec: JobSpec) -> tuple[list[np.ndarray], object]:
    ctx = StageContext("job", "keyframes", spec, tmp, threading.Event(), lambda *args: None, memory)
    result = keyframes.run(ctx, keyframes.KeyframeInputs(analyze_prompt(spec.prompt), storyboard(spec, 1), 2.0))
    images = []
    for path in result.paths:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.int16))
    return images, result.record


def test_a_lora_changes_the_keyframes_and_is_recorded_with_its_sha256(tmp_path, models_root):
    memory = MemoryManager(detect_hardware(), models_root)
    spec = JobSpec(prompt="a lighthouse in a storm", model_set="tiny", seed=3, steps=2, keyframes=1).validate()
    styled = JobSpec.from_dict({**spec.to_dict(), "loras": [{"file": "style.safetensors", "weight": 1.0}]})
    try:
        plain, record = keyframe_images(tmp_path / "plain", memory, spec)
        assert record.loras is None
        with_lora, record = keyframe_images(tmp_path / "styled", memory, styled)
        digest = hashlib.sha256((models_root / "loras" / "style.safetensors").read_bytes()).hexdigest()
        assert [(r.file, r.sha256, r.weight, r.target) for r in record.loras] == [
            ("style.safetensors", digest, 1.0, "keyframes")]
        assert np.abs(plain[0] - with_lora[0]).mean() > 0.5
        again, record = keyframe_images(tmp_path / "again", memory, spec)  # the cached pipeline, LoRA taken off
        assert record.loras is None and np.array_equal(plain[0], again[0])
    finally:
        memory.release()


def test_apply_loras_sets_exactly_the_requested_adapters(models_root):
    ref = MODELS["tiny-sdxl"]
    pipe = load_pipeline(ref, models_root, dtype=torch.float32)
    choice = LoraChoice("style.safetensors", 0.5)
    first = apply_loras(pipe, (choice,), models_root, "keyframes", ref=ref)
    names = pipe.get_list_adapters()
    assert apply_loras(pipe, (choice,), models_root, "keyframes", ref=ref) == first
    assert pipe.get_list_adapters() == names and len(names["unet"]) == 1
    assert apply_loras(pipe, (LoraChoice("style.safetensors", 0.5, target="motion"),), models_root,
                       "keyframes", ref=ref) == []
    assert pipe.get_list_adapters() == {}


def submit_error(generator, **changes) -> str:
    before = len(generator.history())
    values = dict(prompt="a lighthouse in a storm", model_set="tiny", seed=3, duration=1, fps=8)
    values.update(changes)
    with pytest.raises(SpecError) as caught:
        generator.submit(JobSpec.from_dict(values))
    assert len(generator.history()) == before and generator.memory.resident() == []
    message = str(caught.value)
    assert caught.value.field == "loras" and "\n" not in message and message.endswith(".")
    return message


def test_files_that_are_not_loras_for_the_model_are_refused_at_submit(tmp_path, models_root, monkeypatch):
    from backend.jobs.orchestrator import VideoGenerator
    from backend.paths import runtime_paths

    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models_root))
    generator = VideoGenerator(runtime_paths(tmp_path / "home"))
    try:
        assert "'random.safetensors' is not a LoRA:" in submit_error(generator, loras=[{"file": "random.safetensors"}])
        message = submit_error(generator, loras=[{"file": "other-model.safetensors"}])
        assert message.startswith("'other-model.safetensors' is not a LoRA for tiny SDXL")
        assert "48-wide text features" in message
        message = submit_error(generator, loras=[{"file": "t5-style.safetensors"}])
        assert "its layers are for a 4096-wide text encoder" in message
        assert "is not in" in submit_error(generator, loras=[{"file": "missing.safetensors"}])
        motion = [{"file": "style.safetensors", "target": "motion"}]
        assert "cannot take LoRAs" in submit_error(generator, loras=motion, engine="svd")
        assert "needs the engine chosen" in submit_error(generator, loras=motion)
        assert "is not a LoRA for tiny LTX" in submit_error(generator, loras=motion, engine="ltx")
    finally:
        generator.shutdown()


def test_a_motion_lora_on_the_ltx_pipeline_and_none_on_svd(tmp_path, models_root):
    from diffusers import LTXConditionPipeline

    ltx_ref, svd_ref = MODELS["tiny-ltx"], MODELS["tiny-svd"]
    ltx = load_pipeline(ltx_ref, models_root, dtype=torch.float32)
    LTXConditionPipeline.save_lora_weights(tmp_path, weight_name="ltx-motion.safetensors",
                                           transformer_lora_layers=peft_lora(ltx.transformer, ["to_q", "to_v"]))
    (models_root / "loras" / "ltx-motion.safetensors").write_bytes((tmp_path / "ltx-motion.safetensors").read_bytes())
    choice = LoraChoice("ltx-motion.safetensors", 0.7, target="motion")
    spec = JobSpec(prompt="waves", model_set="tiny", engine="ltx", loras=(choice,)).validate()
    loras.check_spec(spec, models_root)  # admission passes for the engine it was made for
    records = apply_loras(ltx, (choice,), models_root, "motion", ref=ltx_ref)
    assert [(r.file, r.target, r.weight) for r in records] == [("ltx-motion.safetensors", "motion", 0.7)]
    assert len(ltx.get_list_adapters()["transformer"]) == 1
    with pytest.raises(LoraError, match="is not a LoRA for tiny Wan"):
        loras.check_spec(JobSpec(prompt="waves", model_set="tiny", engine="wan", loras=(choice,)).validate(),
                         models_root)
    svd = load_pipeline(svd_ref, models_root, dtype=torch.float32)
    with pytest.raises(LoraError, match="cannot take LoRAs") as caught:
        apply_loras(svd, (choice,), models_root, "motion", ref=svd_ref)
    assert "\n" not in str(caught.value)
    assert apply_loras(svd, (), models_root, "motion", ref=svd_ref) == []  # nothing asked: nothing to do


def test_uploads_are_checked_by_content_and_stored_under_a_clean_name(tmp_path, models_root):
    root = tmp_path / "models"
    data = (models_root / "loras" / "style.safetensors").read_bytes()
    saved = loras.save_uploaded(data, "../../my style (v2)!.safetensors", root)
    assert saved.path == root / "loras" / "my-style-v2.safetensors" and saved.sha256 == hashlib.sha256(data).hexdigest()
    assert loras.save_uploaded(data, "my style (v2)!.safetensors", root).path == saved.path  # same file: kept once
    other = (models_root / "loras" / "other-model.safetensors").read_bytes()
    assert loras.save_uploaded(other, "my-style-v2.safetensors", root).name.startswith("my-style-v2-")
    for bad, why in ((b"not a safetensors file", "not a safetensors file"),
                     ((models_root / "loras" / "random.safetensors").read_bytes(), "is not a LoRA")):
        with pytest.raises(LoraError, match=why):
            loras.save_uploaded(bad, "x.safetensors", root)
    assert len(loras.list_loras(root)) == 2
    assert not list((root / "loras").glob(".*"))  # no temporary file left behind
    with pytest.raises(LoraError):
        loras.delete_lora(root, "../../outside.safetensors")
    loras.delete_lora(root, "my-style-v2.safetensors")
    assert len(loras.list_loras(root)) == 1


@pytest.mark.ui
def test_the_models_page_lists_a_lora_with_its_hash_and_deletes_it(studio_home, tmp_path, models_root,  # noqa: F811
                                                                   monkeypatch):
    from ui_support import install_generator, new_app, open_page, run, texts

    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    data = (models_root / "loras" / "style.safetensors").read_bytes()
    (models / "loras" / "style.safetensors").write_bytes(data)
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    install_generator(start_worker=False)
    at = open_page(run(new_app()), "app_pages/models.py")
    page = texts(at)
    assert "style.safetensors" in page and f"sha256 {hashlib.sha256(data).hexdigest()[:12]}" in page
    assert "IP-Adapter SDXL" in page and "models download ip-adapter-sdxl" in page  # not downloaded: how to get it
    assert at.button(key="m_download_ip-adapter-sdxl") is not None  # or the button, like every other model
    at.button(key="m_lora_delete_style.safetensors").click()
    run(at)
    at.button(key="m_lora_yes_style.safetensors").click()
    run(at)
    assert not (models / "loras" / "style.safetensors").exists() and "Deleted style.safetensors" in texts(at)
