"""What the pipeline benchmark runs: stage shapes, full-size configs, the pipeline factory, the plain call.

Full size means the published architectures of SDXL base 1.0, Stable Video Diffusion XT, CogVideoX-5B-I2V
and (``bench.engine_configs``) LTX-Video 2B and 13B distilled (stage ``ltx13b``: the LTX engine under the quick
preset), Wan 2.1 FLF2V 14B and SkyReels-V2 DF 1.3B with random weights: the time and memory of a denoising
step do not depend on the weight values. The configs are written from the models' published ``config.json``
files (no hub access). Text is tokenised by the tiny offline tokenizers of the test set (ids far below the
full vocabularies; text encoding costs little anyway).
``--size tiny`` loads the tiny test set through the studio's own loader; ``--weights local`` the real models.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from backend.models.registry import ModelRef, find_model

SEED = 0
PROMPT = "ocean waves crashing on a beach at golden hour"
GUIDANCE = {"keyframes": 7.0, "cogvideox": 6.0}  # the studio's standard preset and engine values


@dataclass(frozen=True)
class StageShape:
    """One benchmarked stage: the model the studio uses for it and the work of one call."""

    stage: str  # "keyframes" or a motion engine: "svd" | "cogvideox" | "ltx" | "wan" | "skyreels"
    model_key: str  # registry key
    width: int
    height: int
    frames: int
    steps: int
    # The quality preset whose motion model ``model_key`` is (``registry.motion_model_for``): "quick" picks the
    # step-distilled LTX 13B (no CFG) where "standard" picks LTX 2B.
    preset: str = "standard"

    @property
    def ref(self) -> ModelRef:
        return find_model(self.model_key)


@dataclass(frozen=True)
class VideoShape:
    """The whole-video benchmark: the standard preset, as a user would submit it."""

    duration: float
    fps: int
    width: int
    height: int
    engine: str = "svd"
    keyframes: int | None = None  # None: derived from the duration, as for a user's job


STAGES: dict[str, dict[str, StageShape]] = {
    "full": {
        "keyframes": StageShape("keyframes", "sdxl-base", 1024, 1024, 1, 30),
        "svd": StageShape("svd", "svd-xt", 1024, 576, 25, 25),
        "cogvideox": StageShape("cogvideox", "cogvideox-5b-i2v", 720, 480, 49, 50),
        # The studio's main engines at their registry geometry, with the standard preset's 25 motion steps.
        "ltx": StageShape("ltx", "ltx-2b", 768, 512, 121, 25),
        "skyreels": StageShape("skyreels", "skyreels-v2-df-1.3b", 960, 544, 97, 25),  # one base window
        "wan": StageShape("wan", "wan-flf2v-14b", 1280, 720, 81, 25),  # from a start to an end keyframe
        # The quick preset's LTX: 13B step-distilled, its registry geometry, 8 steps at guidance 1.0 (no CFG).
        "ltx13b": StageShape("ltx", "ltx-13b-distilled", 768, 512, 121, 8, preset="quick"),
    },
    # Three steps, so that seconds per step is measured over more than one interval; few frames keep
    # the tiny temporal VAEs (the slowest part of a tiny call) quick on a 2-core CI machine.
    "tiny": {
        "keyframes": StageShape("keyframes", "tiny-sdxl", 128, 64, 1, 3),
        "svd": StageShape("svd", "tiny-svd", 128, 64, 4, 3),
        "cogvideox": StageShape("cogvideox", "tiny-cogvideox-i2v", 96, 64, 9, 3),  # native: learned embeddings
        "ltx": StageShape("ltx", "tiny-ltx", 96, 64, 17, 3),  # 8k+1 frames
        "skyreels": StageShape("skyreels", "tiny-skyreels-df", 64, 48, 17, 3),  # its native base window
        "wan": StageShape("wan", "tiny-wan-flf2v", 32, 32, 9, 3),  # 4k+1 frames
        "ltx13b": StageShape("ltx", "tiny-ltx", 96, 64, 17, 3, preset="quick"),  # the tiny set's ltx-quick
    },
}
VIDEO: dict[str, VideoShape] = {
    "full": VideoShape(10.0, 30, 1920, 1080),  # 5 keyframes, 4 SVD segments, 300 frames of 1080p30
    "tiny": VideoShape(2.5, 30, 320, 180, keyframes=5),  # the same 5 keyframes + 4 segments, fewer frames
}

# ---- full-size configs (from the published config.json files) ---------------------------------------

SDXL_UNET: dict[str, Any] = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0,
)
SDXL_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True,
)
# CLIP ViT-L/14 text tower and OpenCLIP ViT-bigG/14 text tower.
SDXL_TEXT: dict[str, Any] = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                 num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu")
SDXL_TEXT_2: dict[str, Any] = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                   num_attention_heads=20, projection_dim=1280, hidden_act="gelu")
CLIP_VOCAB = 49408
SDXL_SCHEDULER: dict[str, Any] = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                      steps_offset=1, timestep_spacing="leading", prediction_type="epsilon")

SVD_UNET: dict[str, Any] = dict(
    sample_size=96, in_channels=8, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    num_attention_heads=(5, 10, 20, 20), cross_attention_dim=1024, transformer_layers_per_block=1,
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, num_frames=25,
)
SVD_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, sample_size=768, scaling_factor=0.18215, force_upcast=True,
)
# OpenCLIP ViT-H/14 image tower.
SVD_IMAGE_ENCODER: dict[str, Any] = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                         num_attention_heads=16, patch_size=14, image_size=224, projection_dim=1024,
                                         hidden_act="gelu", layer_norm_eps=1e-5)
SVD_SCHEDULER: dict[str, Any] = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction",
    use_karras_sigmas=True, timestep_type="continuous", sigma_min=0.002, sigma_max=700.0,
    interpolation_type="linear", steps_offset=1, timestep_spacing="leading",
)

COGVIDEOX_TRANSFORMER: dict[str, Any] = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, num_layers=42,
    time_embed_dim=512, text_embed_dim=4096, max_text_seq_length=226, patch_size=2, sample_width=90,
    sample_height=60, sample_frames=49, temporal_compression_ratio=4, activation_fn="gelu-approximate",
    attention_bias=True, norm_eps=1e-5, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
    use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
)
COGVIDEOX_VAE: dict[str, Any] = dict(
    block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3, norm_num_groups=32,
    norm_eps=1e-6, temporal_compression_ratio=4, sample_height=480, sample_width=720, scaling_factor=0.7,
    use_quant_conv=False, use_post_quant_conv=False,
)
# google/t5-v1_1-xxl encoder.
T5_XXL: dict[str, Any] = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                              relative_attention_max_distance=128, layer_norm_epsilon=1e-6)
COGVIDEOX_SCHEDULER: dict[str, Any] = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=1.0,
    steps_offset=0, timestep_spacing="trailing",
)

FULL_KEYS = ("sdxl-base", "svd-xt", "cogvideox-5b-i2v", "ltx-2b", "ltx-13b-distilled", "wan-flf2v-14b",
             "skyreels-v2-df-1.3b")
FIRST_LAST = ("wan",)  # stages conditioned on a start and an end keyframe


@contextlib.contextmanager
def built_on(device: str, dtype: Any) -> Iterator[None]:
    """Construct modules directly on ``device`` in ``dtype``: no fp32 copy, no second copy on the CPU."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _seeded(factory: Any) -> Any:
    import torch

    torch.manual_seed(SEED)  # the same weights whatever was built before
    return factory().eval().requires_grad_(False)


def build_full(model_key: str, models_root: Path, *, device: str, dtype: Any) -> Any:
    """A full-size diffusers pipeline with random weights, built directly on ``device`` in ``dtype``."""
    from transformers import AutoTokenizer

    from backend.models.tiny import ensure_tiny_model
    from bench import engine_configs as engines

    if model_key not in FULL_KEYS:  # e.g. SDXL-Turbo, the quick preset's keyframe model
        raise ValueError(f"no full-size config for {model_key!r}; known: {', '.join(FULL_KEYS)}")
    tiny_name = {"sdxl-base": "sdxl", "cogvideox-5b-i2v": "cogvideox-i2v", **engines.TOKENIZERS}.get(model_key)
    tokenizer = (AutoTokenizer.from_pretrained(ensure_tiny_model(tiny_name, models_root) / "tokenizer")
                 if tiny_name else None)
    # Only the weight-bearing modules are built under the device/dtype defaults: schedulers must keep
    # their float32 noise tables on the CPU.
    with built_on(device, dtype):
        if model_key in engines.ENGINE_KEYS:
            modules = engines.engine_modules(model_key, tokenizer)
        else:
            modules = {"sdxl-base": _sdxl_modules, "svd-xt": _svd_modules,
                       "cogvideox-5b-i2v": _cogvideox_modules}[model_key](tokenizer)
    pipe = (engines.engine_pipeline(model_key, modules, tokenizer) if model_key in engines.ENGINE_KEYS
            else _assemble(model_key, modules, tokenizer))
    # A few tensors ignore the defaults (legacy ``torch.Tensor([...])`` constructors, fixed-dtype buffers).
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sdxl_modules(tokenizer: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    text = CLIPTextConfig(vocab_size=CLIP_VOCAB, max_position_embeddings=77, **ids, **SDXL_TEXT)
    text_2 = CLIPTextConfig(vocab_size=CLIP_VOCAB, max_position_embeddings=77, **ids, **SDXL_TEXT_2)
    return {"vae": _seeded(lambda: AutoencoderKL(**SDXL_VAE)),
            "text_encoder": _seeded(lambda: CLIPTextModel(text)),
            "text_encoder_2": _seeded(lambda: CLIPTextModelWithProjection(text_2)),
            "unet": _seeded(lambda: UNet2DConditionModel(**SDXL_UNET))}


def _svd_modules(tokenizer: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = CLIPVisionConfig(**SVD_IMAGE_ENCODER)
    return {"vae": _seeded(lambda: AutoencoderKLTemporalDecoder(**SVD_VAE)),
            "image_encoder": _seeded(lambda: CLIPVisionModelWithProjection(vision)),
            "unet": _seeded(lambda: UNetSpatioTemporalConditionModel(**SVD_UNET))}


def _cogvideox_modules(tokenizer: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    t5 = T5Config(**T5_XXL, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return {"text_encoder": _seeded(lambda: T5EncoderModel(t5)),
            "vae": _seeded(lambda: AutoencoderKLCogVideoX(**COGVIDEOX_VAE)),
            "transformer": _seeded(lambda: CogVideoXTransformer3DModel(**COGVIDEOX_TRANSFORMER))}


def _assemble(model_key: str, modules: dict[str, Any], tokenizer: Any) -> Any:
    """The real diffusers pipeline class around the modules, with the published scheduler settings."""
    import diffusers
    from transformers import CLIPImageProcessor

    if model_key == "sdxl-base":
        return diffusers.StableDiffusionXLPipeline(
            **modules, tokenizer=tokenizer, tokenizer_2=tokenizer, add_watermarker=False,
            scheduler=diffusers.EulerDiscreteScheduler(**SDXL_SCHEDULER))
    if model_key == "svd-xt":
        processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
        return diffusers.StableVideoDiffusionPipeline(
            **modules, scheduler=diffusers.EulerDiscreteScheduler(**SVD_SCHEDULER), feature_extractor=processor)
    return diffusers.CogVideoXImageToVideoPipeline(
        **modules, tokenizer=tokenizer, scheduler=diffusers.CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER))


def denoiser_of(pipe: Any) -> Any:
    return getattr(pipe, "unet", None) or pipe.transformer


class PipelineFactory:
    """Pipelines by registry key: built (full, random), loaded (tiny, local) — cached until released."""

    def __init__(self, weights: str, models_root: Path, device: str, dtype: Any) -> None:
        self.weights, self.models_root = weights, Path(models_root)
        self.device, self.dtype = device, dtype
        self._cache: dict[str, Any] = {}

    def fresh(self, model_key: str, *, device: str | None = None, dtype: Any = None) -> Any:
        """A new pipeline (not cached): fast-path experiments and memory budgets start from a clean one."""
        from backend.models.loader import load_pipeline

        device, dtype = device or self.device, dtype or self.dtype
        ref = find_model(model_key)
        if ref.is_tiny or self.weights == "local":
            pipe = load_pipeline(ref, self.models_root, dtype=dtype)  # the studio's own loader
            return pipe.to(device)
        return build_full(model_key, self.models_root, device=device, dtype=dtype)

    def get(self, model_key: str) -> Any:
        if model_key not in self._cache:
            self._cache[model_key] = self.fresh(model_key)
        return self._cache[model_key]

    def loader(self, ref: ModelRef, models_root: Path, *, dtype: Any) -> Any:
        """The MemoryManager's loader seam: hand the studio the cached pipeline instead of reading disk."""
        pipe = self.get(ref.key)
        return pipe if pipe.dtype == dtype else pipe.to(dtype)

    def release(self, model_key: str | None = None) -> None:
        for key in [model_key] if model_key else list(self._cache):
            self._cache.pop(key, None)


# ---- inputs (a keyframe to animate, a clip to finish) and the baseline's plain call ---------------------


def condition_image(width: int, height: int) -> Any:
    """A smooth picture with an edge: the keyframe a motion benchmark starts from."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(1, width), y * 255 // max(1, height), np.full_like(x, 110)], -1).astype(np.uint8)
    image[height // 3: height // 2, width // 3: width // 2] = (240, 200, 40)
    return Image.fromarray(image)


class FramesClip:
    """A pan over the condition image with grain, held in RAM: what ``finish()`` reads from assemble."""

    def __init__(self, count: int, width: int, height: int, fps: float) -> None:
        import numpy as np

        base, rng = np.asarray(condition_image(width * 2, height)).astype(np.int16), np.random.default_rng(SEED)
        step = width // (2 * count)
        self._frames = [np.clip(base[:, i * step: i * step + width] + rng.integers(-6, 7, (height, width, 3)), 0, 255)
                        .astype(np.uint8) for i in range(count)]
        self.fps, self.width, self.height = fps, width, height

    def frames(self) -> Iterator[Any]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def condition_images(shape: StageShape) -> list[Any]:
    """The keyframes a motion stage starts from: one, or a start and a (mirrored) end for first-last engines."""
    from PIL import ImageOps

    start = condition_image(shape.width, shape.height)
    return [start, ImageOps.mirror(start)] if shape.stage in FIRST_LAST else [start]


def plain_call(pipe: Any, shape: StageShape, image: Any = None, clock: Any = None, strength: float | None = None,
               last: Any = None) -> Any:
    """The plain diffusers call, as the diffusers docs show it (same prompt, guidance, shapes and steps as the
    studio's call); returns the images or frames. ``strength`` makes an SDXL call img2img from ``image``;
    ``last`` is a first-last engine's end keyframe."""
    import torch

    from backend.prompting import analyze_prompt

    common: dict[str, Any] = dict(num_inference_steps=shape.steps, width=shape.width, height=shape.height,
                                  generator=torch.Generator().manual_seed(SEED),
                                  callback_on_step_end=clock.callback if clock else None)
    negative = analyze_prompt(PROMPT).negative_prompt
    if shape.stage == "keyframes" and strength is not None:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        img2img = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe)
        img2img.set_progress_bar_config(disable=True)
        common.pop("width"), common.pop("height")
        return img2img(prompt=PROMPT, negative_prompt=negative, image=image, strength=strength,
                       guidance_scale=GUIDANCE["keyframes"], **common).images
    if shape.stage == "keyframes":
        return pipe(prompt=PROMPT, negative_prompt=negative, guidance_scale=GUIDANCE["keyframes"], **common).images
    if shape.stage == "svd":
        return pipe(image, num_frames=shape.frames, decode_chunk_size=8, **common).frames[0]
    if shape.stage != "cogvideox":
        from bench.engine_configs import plain_engine_call

        return plain_engine_call(pipe, shape, [image] + ([last] if last is not None else []), negative, common)
    return pipe(prompt=PROMPT, negative_prompt=negative, image=image, num_frames=shape.frames,
                guidance_scale=GUIDANCE["cogvideox"], max_sequence_length=shape.ref.max_sequence_length or 226,
                **common).frames[0]


def plain_ffmpeg(frames: list[Any], fps: float, graph: str, tmp: Path, out_fps: int) -> float:
    """Seconds of one plain ffmpeg command with the studio's graph and encoder options, reading a raw file."""
    import subprocess
    import tempfile
    import time

    import numpy as np

    from backend.media.video_io import ffmpeg_exe
    from backend.spec import FinishOptions
    from backend.stages import export

    folder = Path(tempfile.mkdtemp(prefix="raw-", dir=tmp))
    height, width = frames[0].shape[:2]
    (folder / "clip.rgb").write_bytes(b"".join(np.ascontiguousarray(f).tobytes() for f in frames))
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-framerate", f"{fps:g}", "-i", str(folder / "clip.rgb"), "-vf", graph,
            *export.output_args(export.H264_X264, crf=FinishOptions().crf, metadata={}, fps=out_fps),
            str(folder / "raw.mp4")]
    started = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - started
