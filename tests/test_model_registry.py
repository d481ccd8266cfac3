"""Model registry: presets, their download facts and memory facts, model sets."""

from __future__ import annotations

import fnmatch
import re

import pytest

from backend.models.registry import (
    FINISHING_MODELS,
    MODEL_SETS,
    MODELS,
    PHASES,
    diffusers_patterns,
    find_model,
    keyframe_model_for,
    model_for,
)
from backend.models.tiny import TINY_MODELS

REAL = [ref for ref in MODELS.values() if not ref.is_tiny]
GIB = 1024**3


def test_presets_the_issue_asks_for() -> None:
    repos = {ref.repo_id for ref in REAL}
    assert repos >= {"stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/sdxl-turbo",
                     "stabilityai/stable-video-diffusion-img2vid-xt", "THUDM/CogVideoX-5b-I2V",
                     "Lightricks/LTX-Video-0.9.5", "Lightricks/LTX-Video-0.9.7-distilled",
                     "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers"}
    assert {ref.key: ref.conditioning for ref in REAL if ref.frames > 1} == {
        "ltx-2b": "keyframes", "ltx-13b-distilled": "keyframes", "wan-flf2v-14b": "first_last",
        "skyreels-v2-df-1.3b": "continuation", "svd-xt": "first_frame", "cogvideox-5b-i2v": "first_frame"}
    light = [ref.key for ref in REAL if ref.low_memory]
    assert light == ["ltx-2b"] and MODELS["ltx-2b"].conditioning == "keyframes"  # the light engine keeps keyframes
    assert MODELS["ltx-13b-distilled"].default_steps == 8 and not MODELS["ltx-13b-distilled"].cfg


@pytest.mark.parametrize("ref", REAL, ids=lambda r: r.key)
def test_real_presets_are_complete(ref) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", ref.revision), "a real preset pins a commit, not a branch"
    assert ref.licence and ref.size_gb > 0 and ref.allow_patterns
    assert "model_index.json" in ref.allow_patterns
    assert ref.memory is not None and {c.phase for c in ref.components} == set(PHASES)
    # The size on disk is the weights in 16-bit (fp16 variant, or CogVideoX's bf16 files).
    assert ref.size_gb == pytest.approx(ref.params_b * 1e9 * 2 / GIB, rel=0.08)


@pytest.mark.parametrize("ref", [r for r in FINISHING_MODELS.values() if not r.is_tiny], ids=lambda r: r.key)
def test_single_file_presets_are_pinned_by_commit_or_by_the_published_files_sha256(ref) -> None:
    assert ref.repo_id and len(ref.allow_patterns) == 1 and "*" not in ref.allow_patterns[0]  # exactly one file
    assert re.fullmatch(r"[0-9a-f]{40}", ref.revision) or re.fullmatch(r"[0-9a-f]{64}", ref.sha256 or "")


def test_allow_patterns_fetch_only_the_variant() -> None:
    patterns = MODELS["sdxl-base"].allow_patterns
    wanted = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
              "text_encoder_2/model.fp16.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json"]
    unwanted = ["unet/diffusion_pytorch_model.safetensors", "sd_xl_base_1.0.safetensors", "unet/model.onnx",
                "vae_decoder/model.onnx", "text_encoder/openvino_model.bin"]
    assert all(any(fnmatch.fnmatch(f, p) for p in patterns) for f in wanted)
    assert not any(any(fnmatch.fnmatch(f, p) for p in patterns) for f in unwanted)
    assert not any(fnmatch.fnmatch("svd_xt.safetensors", p) for p in MODELS["svd-xt"].allow_patterns)
    cog = MODELS["cogvideox-5b-i2v"].allow_patterns  # no fp16 variant: sharded bf16 files
    assert any(fnmatch.fnmatch("transformer/diffusion_pytorch_model-00001-of-00003.safetensors", p) for p in cog)


def test_diffusers_patterns_shape() -> None:
    assert diffusers_patterns(("unet",), ("scheduler",), None) == (
        "model_index.json", "unet/*.json", "unet/*.safetensors", "scheduler/*")


def test_gated_and_licence_notes() -> None:
    assert MODELS["svd-xt"].gated and not MODELS["sdxl-base"].gated
    assert "non-commercial" in MODELS["sdxl-turbo"].licence.lower()


def test_model_sets_cover_every_role() -> None:
    assert set(MODEL_SETS["default"]) == set(MODEL_SETS["tiny"])
    for model_set, roles in MODEL_SETS.items():
        for role, key in roles.items():
            assert MODELS[key].is_tiny == (model_set == "tiny"), (model_set, role)
    assert model_for("tiny", "low-memory").key == "tiny-ltx"
    with pytest.raises(ValueError, match="No model for role"):
        model_for("default", "nope")


def test_tiny_presets_match_the_tiny_set() -> None:
    for ref in MODELS.values():
        if ref.is_tiny:
            assert TINY_MODELS[ref.tiny_name] == ref.pipeline_class
            assert "test" in ref.label and "noise" in ref.label


def test_quick_preset_uses_sdxl_turbo() -> None:
    assert keyframe_model_for("default", "quick").key == "sdxl-turbo"
    assert keyframe_model_for("default", "standard").key == "sdxl-base"
    assert keyframe_model_for("tiny", "quick").key == "tiny-sdxl"
    assert MODELS["sdxl-turbo"].default_steps == 4 and not MODELS["sdxl-turbo"].cfg


def test_find_model_lists_names_when_unknown() -> None:
    assert find_model("svd-xt").key == "svd-xt"
    with pytest.raises(ValueError, match="Known models: sdxl-base"):
        find_model("sdxl")
