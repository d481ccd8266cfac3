"""Tests of the tiny random-weight model set (test models — output is noise).

Each model is built through ensure_tiny_model, loaded with the ordinary diffusers
``from_pretrained(folder)`` and run for 2 steps with classifier-free guidance at a resolution the
studio uses. The cache tests (rebuild, locking) use a private folder so they never disturb a shared
STUDIO_MODELS_DIR that other test workers may be reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import diffusers  # after HF_HUB_OFFLINE is set

from backend.models import tiny, tiny_configs
from backend.models.tiny import (
    TINY_LABEL,
    TINY_MODELS,
    ensure_tiny_model,
    is_tiny_model_complete,
    tiny_model_dir,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS = 2


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("STUDIO_MODELS_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("models")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def _image(width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), color)


Call = Callable[[Any, int], np.ndarray]  # (pipeline, seed) -> output frames as numpy


def _call_sdxl(pipe: Any, seed: int) -> np.ndarray:
    return pipe(
        "a cat", width=128, height=64, num_inference_steps=STEPS, guidance_scale=5.0,
        generator=_generator(seed), output_type="np",
    ).images


def _call_svd(pipe: Any, seed: int) -> np.ndarray:
    return pipe(
        _image(128, 64, (200, 100, 50)), width=128, height=64, num_frames=8, num_inference_steps=STEPS,
        decode_chunk_size=4, generator=_generator(seed), output_type="np",
    ).frames


def _call_cogvideox_t2v(pipe: Any, seed: int) -> np.ndarray:
    return pipe(
        "a cat", width=96, height=64, num_frames=9, num_inference_steps=STEPS, guidance_scale=6.0,
        max_sequence_length=16, generator=_generator(seed), output_type="np",
    ).frames


def _call_cogvideox_i2v(pipe: Any, seed: int, **overrides: Any) -> np.ndarray:
    # Learned positional embeddings lock the size to 96x64; 9 frames keeps the learned table.
    kwargs = {"width": 96, "height": 64, "num_frames": 9, "num_inference_steps": STEPS, "guidance_scale": 6.0, **overrides}
    return pipe(image=_image(96, 64, (10, 200, 30)), prompt="a cat", max_sequence_length=16,
                generator=_generator(seed), output_type="np", **kwargs).frames


def _call_wan_flf2v(pipe: Any, seed: int) -> np.ndarray:
    return pipe(
        image=_image(64, 48, (200, 100, 50)), last_image=_image(64, 48, (20, 100, 250)), prompt="a cat",
        width=64, height=48, num_frames=9, num_inference_steps=STEPS, guidance_scale=5.0,
        max_sequence_length=512, generator=_generator(seed), output_type="np",
    ).frames


LTX_KEYFRAMES = ((0, (230, 40, 40)), (8, (40, 230, 40)), (16, (40, 40, 230)))  # pixel frame index, colour


def _call_ltx_condition(pipe: Any, seed: int, keyframes: tuple = LTX_KEYFRAMES, **overrides: Any) -> np.ndarray:
    # conditions=[...], not image=[...]/frame_index=[...] alone: diffusers 0.42 zips an image list with
    # video=[None] and silently keeps the first image only, unless video=[None] * n is passed too.
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = [LTXVideoCondition(image=_image(96, 64, colour), frame_index=index) for index, colour in keyframes]
    kwargs = {"conditions": conditions, "width": 96, "height": 64, "num_frames": 17, "frame_rate": 24,
              "guidance_scale": 3.0, "decode_timestep": 0.05, "decode_noise_scale": 0.025,
              "image_cond_noise_scale": 0.15, "max_sequence_length": 128, **overrides}
    return pipe(prompt="a cat", num_inference_steps=STEPS, generator=_generator(seed), output_type="np", **kwargs).frames


def _call_skyreels_df(pipe: Any, seed: int, **overrides: Any) -> np.ndarray:
    """I2V by default; also runs V2V. Its addnoise_condition noise comes from torch's global RNG, not
    generator=. causal_block_size goes in every call: once given, it stays in the transformer's config."""
    kwargs = {"image": _image(64, 48, (200, 100, 50)), "num_frames": 17, "causal_block_size": 1, "ar_step": 0,
              "guidance_scale": 5.0, "width": 64, "height": 48, "base_num_frames": 17, "fps": 24, **overrides}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pipe(prompt="a cat", num_inference_steps=STEPS, generator=_generator(seed), output_type="np",
                    **{k: v for k, v in kwargs.items() if v is not None}).frames


# name -> (call recipe, expected output shape)
CASES: dict[str, tuple[Call, tuple[int, ...]]] = {
    "sdxl": (_call_sdxl, (1, 64, 128, 3)),
    "svd": (_call_svd, (1, 8, 64, 128, 3)),
    "cogvideox-t2v": (_call_cogvideox_t2v, (1, 9, 64, 96, 3)),
    "cogvideox-i2v": (_call_cogvideox_i2v, (1, 9, 64, 96, 3)),
    "wan-flf2v": (_call_wan_flf2v, (1, 9, 48, 64, 3)),
    "ltx-condition": (_call_ltx_condition, (1, 17, 64, 96, 3)),
    "skyreels-df": (_call_skyreels_df, (1, 17, 48, 64, 3)),
}


def _denoiser_inputs(denoiser: torch.nn.Module) -> list[tuple[int, ...]]:
    """Record the input shape of every denoiser forward (CFG: 2 samples per step in total)."""
    shapes: list[tuple[int, ...]] = []

    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        shapes.append(tuple(sample.shape))

    denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    return shapes


def _load(name: str, folder: Path) -> Any:
    return getattr(diffusers, TINY_MODELS[name]).from_pretrained(folder)


def _weights_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


# ---- API --------------------------------------------------------------------------------------


def test_public_names() -> None:
    assert TINY_LABEL == "test models — output is noise"
    assert set(TINY_MODELS) == set(CASES)
    for class_name in TINY_MODELS.values():
        assert hasattr(diffusers, class_name), class_name
    assert set(tiny_configs.BUILDERS) == set(TINY_MODELS)


def test_unknown_name_raises_with_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sdxl.*svd|svd.*sdxl") as info:
        ensure_tiny_model("sd15", tmp_path)
    assert "wan-flf2v" in str(info.value)
    with pytest.raises(ValueError):
        tiny_model_dir("nope", tmp_path)
    assert not (tmp_path / "tiny").exists()


def test_import_does_not_load_torch() -> None:
    code = "import sys, backend.models.tiny; print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ---- each model: build, load, run -------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_model_builds_loads_and_runs(name: str, models_root: Path) -> None:
    call, expected_shape = CASES[name]
    folder = ensure_tiny_model(name, models_root)
    assert folder == models_root / "tiny" / name
    assert is_tiny_model_complete(folder)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == TINY_MODELS[name]

    pipe = _load(name, folder)
    assert type(pipe).__name__ == TINY_MODELS[name]
    shapes = _denoiser_inputs(pipe.unet if hasattr(pipe, "unet") else pipe.transformer)
    first = call(pipe, 7)
    assert first.shape == expected_shape
    assert np.isfinite(first).all() and first.min() >= 0.0 and first.max() <= 1.0
    assert sum(shape[0] for shape in shapes) == 2 * STEPS, f"expected {STEPS} guided steps, saw {shapes}"

    assert np.array_equal(call(pipe, 7), first), "same seed must give the same output on CPU"
    assert not np.array_equal(call(pipe, 8), first), "a different seed must change the output"


def test_sdxl_img2img_from_pipe(models_root: Path) -> None:
    txt2img = _load("sdxl", ensure_tiny_model("sdxl", models_root))
    img2img = diffusers.StableDiffusionXLImg2ImgPipeline.from_pipe(txt2img)
    assert img2img.unet is txt2img.unet  # from_pipe shares components, no second load
    shapes = _denoiser_inputs(img2img.unet)
    out = img2img(
        "a cat", image=_image(128, 64, (90, 90, 200)), strength=0.5, num_inference_steps=2 * STEPS,
        guidance_scale=5.0, generator=_generator(1), output_type="np",
    ).images
    assert out.shape == (1, 64, 128, 3)
    assert sum(shape[0] for shape in shapes) == 2 * STEPS  # strength 0.5 of 4 steps = 2 guided steps


# ---- LTX keyframes, SkyReels-V2 diffusion forcing, CogVideoX learned embeddings ------------------


def test_ltx_condition_takes_several_keyframes(models_root: Path) -> None:
    pipe = _load("ltx-condition", folder := ensure_tiny_model("ltx-condition", models_root))
    shapes = _denoiser_inputs(pipe.transformer)
    frames = _call_ltx_condition(pipe, 3)
    assert frames.shape == (1, 17, 64, 96, 3)
    # 96x64 / 32 = 3x2 latent pixels, 17 frames = 3 latent frames: 18 video tokens. The frame-0 image
    # replaces the first latent frame in place; each later keyframe adds 6 tokens of its own.
    assert [shape[1] for shape in shapes] == [18 + 2 * 6] * STEPS
    # Random weights do not pull a frame towards its keyframe's colour, but every keyframe counts.
    assert not np.array_equal(_call_ltx_condition(pipe, 3, LTX_KEYFRAMES[:2] + ((16, (240, 240, 20)),)), frames)
    images, indexes = [_image(96, 64, colour) for _, colour in LTX_KEYFRAMES], [i for i, _ in LTX_KEYFRAMES]
    same = _call_ltx_condition(pipe, 3, conditions=None, image=images, frame_index=indexes, video=[None] * 3)
    assert np.array_equal(same, frames)

    pipe = diffusers.LTXConditionPipeline.from_pretrained(folder, dtype=torch.bfloat16)  # bf16 on the CPU
    bf16_frames = _call_ltx_condition(pipe, 5)
    assert bf16_frames.shape == frames.shape and np.isfinite(bf16_frames).all()
    assert all({p.dtype for p in getattr(pipe, name).parameters()} == {torch.bfloat16} for name in ("transformer", "vae"))
    assert pipe.text_encoder.dtype == torch.bfloat16


def test_skyreels_df_long_video_and_continuation(models_root: Path) -> None:
    i2v = _load("skyreels-df", ensure_tiny_model("skyreels-df", models_root))
    shapes = _denoiser_inputs(i2v.transformer)
    # 29 frames = 8 latents: a window of base_num_frames (5 latents), then one resuming from its last 2.
    long_call = {"num_frames": 29, "overlap_history": 5, "addnoise_condition": 20}
    frames = _call_skyreels_df(i2v, 2, **long_call)
    assert frames.shape == (1, 29, 48, 64, 3) and np.isfinite(frames).all()
    assert len(shapes) == 2 * STEPS * 2 and {shape[2] for shape in shapes} == {5}  # windows x steps x CFG
    assert np.array_equal(_call_skyreels_df(i2v, 2, **long_call), frames)
    shapes.clear()  # asynchronous: each latent frame lags ar_step steps behind the one before
    assert _call_skyreels_df(i2v, 2, ar_step=1, **long_call).shape == frames.shape and len(shapes) > 2 * STEPS * 2

    v2v = diffusers.SkyReelsV2DiffusionForcingVideoToVideoPipeline.from_pipe(i2v, dtype=i2v.transformer.dtype)
    assert v2v.transformer is i2v.transformer and v2v.vae is i2v.vae  # shared, not loaded again
    clip = [_image(64, 48, (25 * i, 120, 60)) for i in range(9)]
    shapes.clear()
    continuation = {"image": None, "video": clip, "num_frames": 25, "overlap_history": 5, "addnoise_condition": 20}
    out = _call_skyreels_df(v2v, 4, **continuation)
    # The input clip, then num_frames decoded frames whose first overlap_history re-decode its tail.
    assert out.shape == (1, 9 + 25, 48, 64, 3) and len(shapes) == 2 * STEPS * 2  # 7 latents: 2 windows
    np.testing.assert_allclose(out[0, :9], np.stack([np.asarray(f, np.float32) / 255 for f in clip]), atol=1e-6)
    assert np.array_equal(_call_skyreels_df(v2v, 4, **continuation), out)


def test_cogvideox_uses_learned_positional_embeddings(models_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = ensure_tiny_model("cogvideox-i2v", models_root)
    config = json.loads((folder / "transformer" / "config.json").read_text())
    assert config["use_learned_positional_embeddings"] and config["use_rotary_positional_embeddings"]
    width, height, frames, _fps = tiny_configs.COGVIDEOX_NATIVE
    assert (config["sample_width"] * 8, config["sample_height"] * 8, config["sample_frames"]) == (width, height, frames)
    pipe = _load("cogvideox-i2v", folder)
    embed, rebuilt = pipe.transformer.patch_embed, []
    sincos = embed._get_positional_embeddings
    monkeypatch.setattr(embed, "_get_positional_embeddings", lambda *a, **k: rebuilt.append(1) or sincos(*a, **k))
    quick = {"num_inference_steps": 1, "guidance_scale": 1.0}
    assert _call_cogvideox_i2v(pipe, 0, **quick).shape == (1, frames, height, width, 3)
    assert not rebuilt, "at the native frame count the learned table must be used"
    _call_cogvideox_i2v(pipe, 0, num_frames=frames + 4, **quick)  # other latent length: diffusers swaps in sin-cos
    assert rebuilt
    with pytest.raises(ValueError, match="different resolution"):
        _call_cogvideox_i2v(pipe, 0, width=64, height=48, **quick)


def test_tokenizers_match_text_encoders(models_root: Path) -> None:
    from transformers import AutoTokenizer

    sdxl = ensure_tiny_model("sdxl", models_root)
    clip = AutoTokenizer.from_pretrained(sdxl / "tokenizer")
    clip_config = json.loads((sdxl / "text_encoder" / "config.json").read_text())
    ids = clip("ocean waves at golden hour").input_ids
    assert ids[0] == clip.bos_token_id == clip_config["bos_token_id"]
    assert ids[-1] == clip.eos_token_id == clip_config["eos_token_id"] != 2
    assert clip.model_max_length == 77 and len(clip) <= clip_config["vocab_size"]
    assert len(ids) < len("ocean waves at golden hour") + 2, "learned merges should join characters"

    wan = ensure_tiny_model("wan-flf2v", models_root)
    t5 = AutoTokenizer.from_pretrained(wan / "tokenizer")
    t5_config = json.loads((wan / "text_encoder" / "config.json").read_text())
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    assert t5("a cat").input_ids[-1] == 1 and t5.bos_token_id is None
    assert 60 <= len(t5) <= t5_config["vocab_size"]


# ---- cache behaviour --------------------------------------------------------------------------


def test_second_ensure_does_not_rebuild(models_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = ensure_tiny_model("cogvideox-t2v", models_root)
    marker = folder / tiny.MARKER_NAME
    before = (folder.stat().st_mtime_ns, marker.stat().st_mtime_ns, marker.read_text())

    def must_not_build(_workdir: Path) -> None:
        raise AssertionError("ensure_tiny_model rebuilt a complete folder")

    monkeypatch.setitem(tiny_configs.BUILDERS, "cogvideox-t2v", must_not_build)
    assert ensure_tiny_model("cogvideox-t2v", models_root) == folder
    assert (folder.stat().st_mtime_ns, marker.stat().st_mtime_ns, marker.read_text()) == before


def test_missing_marker_triggers_identical_rebuild(tmp_path: Path) -> None:
    folder = ensure_tiny_model("cogvideox-t2v", tmp_path)
    digest = _weights_digest(folder)
    (folder / tiny.MARKER_NAME).unlink()
    (folder / "half-written.bin").write_bytes(b"junk")  # what a killed build might leave
    assert not is_tiny_model_complete(folder)

    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    assert ensure_tiny_model("cogvideox-t2v", tmp_path) == folder
    assert torch.equal(torch.rand(3), expected_draw), "building must not disturb the caller's RNG"

    assert is_tiny_model_complete(folder)
    assert not (folder / "half-written.bin").exists()
    assert _weights_digest(folder) == digest, "a rebuild must give identical weights"
    assert len(digest) == 3  # text encoder, vae, transformer


def test_marker_of_other_format_is_incomplete(tmp_path: Path) -> None:
    folder = ensure_tiny_model("cogvideox-t2v", tmp_path)
    (folder / tiny.MARKER_NAME).write_text("0\n")
    assert not is_tiny_model_complete(folder)
    ensure_tiny_model("cogvideox-t2v", tmp_path)
    assert (folder / tiny.MARKER_NAME).read_text().strip() == tiny.FORMAT_VERSION


def test_killed_build_leftovers_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / "tiny" / f".cogvideox-t2v{tiny._BUILDING_PREFIX}killed"
    (stale / "model").mkdir(parents=True)
    folder = ensure_tiny_model("cogvideox-t2v", tmp_path)
    assert not stale.exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == [".cogvideox-t2v.lock", "cogvideox-t2v"]


def test_concurrent_builders_wait_and_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    real_builder = tiny_configs.BUILDERS["cogvideox-t2v"]

    def counting_builder(workdir: Path) -> Any:
        builds.append(threading.current_thread().name)
        return real_builder(workdir)

    monkeypatch.setitem(tiny_configs.BUILDERS, "cogvideox-t2v", counting_builder)
    folder = tiny_model_dir("cogvideox-t2v", tmp_path)
    folder.parent.mkdir(parents=True)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            ensure_tiny_model("cogvideox-t2v", tmp_path)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=build, name=f"builder-{i}") for i in range(2)]
    # Another builder (standing in for another process) holds the lock: both must wait.
    with tiny._build_lock(folder):
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        assert all(worker.is_alive() for worker in workers)
        assert not folder.exists() and not builds
    for worker in workers:
        worker.join(timeout=60)
    assert not errors
    assert len(builds) == 1, f"built {len(builds)} times: {builds}"
    assert is_tiny_model_complete(folder)
