"""Model registry: which real (or tiny test) model serves each role, what it needs, where it comes from.

A *model set* maps roles (``keyframes``, ``svd``, ``cogvideox``, ...) to registry keys. ``default`` is
the real Hugging Face models; ``tiny`` is the random-weight test set whose output is noise.

Each preset also carries the facts the memory planner needs (parameters per component, activation
memory measured or published at the native size). The planner in ``backend.memory`` turns those facts
into the minimum VRAM per memory level (``backend.memory.estimates.min_vram_by_level``), so the numbers
shown to users and the numbers plans are chosen by can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

# Phases of one pipeline call; under model offload only the components of one phase are on the GPU.
PHASES = ("encode", "denoise", "decode")
# How a VAE's decode memory grows: "tiled" (tiling bounds it; SDXL, CogVideoX), "chunked" (frames
# decoded ``decode_chunk_size`` at a time; SVD), "sliced" (all frames at once unless slicing).
DECODE_UNITS = ("tiled", "chunked", "sliced")


@dataclass(frozen=True)
class Component:
    """One weight-bearing part of a pipeline (``params_b``: billions of parameters)."""

    name: str
    params_b: float
    phase: str


@dataclass(frozen=True)
class MemoryFacts:
    """Activation memory at the model's native workload (batch 2 = CFG, 16-bit), for the estimator.

    Calibrated against published figures (see docs/MEMORY.md); they are estimates, not guarantees.
    """

    denoise_gb: float  # denoiser activations, no forward chunking
    decode_gb: float  # VAE decode: whole decode ("tiled"), or per frame ("chunked", "sliced")
    decode_tiled_gb: float | None = None  # "tiled" unit: decode with VAE tiling
    decode_unit: str = "tiled"
    forward_chunking_factor: float | None = None  # share of denoise activations left with chunking
    group_fraction: float = 0.3  # share of the largest component on the GPU under block-level groups
    vae_upcast_fp16: bool = False  # the pipeline upcasts the VAE to fp32 when running in fp16
    encode_gb: float = 0.2
    step_seconds: float = 0.15  # one denoising step at native size, A100-class GPU, 16-bit
    decode_seconds: float = 1.0  # one VAE decode of a native output, same GPU


@dataclass(frozen=True)
class ModelRef:
    key: str
    pipeline_class: str  # diffusers class name used with from_pretrained
    repo_id: str | None = None  # hub id for real models
    # A commit of the Hub repository (40 hex): what was pinned is what is downloaded and recorded. The SHAs were
    # found pinned to the same repo ids in public code (docs/MODELS.md lists the evidence); this studio's
    # machines had no Hub access to re-check them, so a download is the first check.
    revision: str = "main"
    # For a single weights file whose repository has no commit we could check: the SHA-256 of the published
    # file. What is loaded is exactly that file, whatever the repository's "main" holds later.
    sha256: str | None = None
    variant: str | None = None  # e.g. "fp16" weight files
    tiny_name: str | None = None  # set for the tiny test set (built offline)
    label: str = ""
    # Native geometry: what the model was trained for and runs best at.
    width: int = 1024
    height: int = 1024
    frames: int = 1
    fps: int = 8
    max_sequence_length: int | None = None
    gated: bool = False
    licence: str = ""
    # Downloads: what to fetch and how big it is on disk (GiB, shown as GB).
    allow_patterns: tuple[str, ...] = ()
    size_gb: float = 0.0
    # Memory planning.
    components: tuple[Component, ...] = ()
    memory: MemoryFacts | None = None
    cfg: bool = True  # classifier-free guidance doubles the batch
    default_steps: int | None = None  # overrides the preset's step count (distilled models)
    # Smaller workloads the planner may cap to when even the lowest memory level cannot fit, best first:
    # frame counts the model handles, and scales of the requested size (kept to multiples of 64).
    frame_options: tuple[int, ...] = ()
    scale_options: tuple[float, ...] = ()
    low_memory: bool = False  # the light engine offered when the requested one cannot fit
    # What a motion model can be told (see backend.stages.engines.base.Conditioning): "keyframes" at frame
    # indices, "first_last" frame per call, "continuation" of a shot, or "first_frame" only.
    conditioning: str = "first_frame"
    notes: tuple[str, ...] = ()

    @property
    def is_tiny(self) -> bool:
        return self.tiny_name is not None

    @property
    def params_b(self) -> float:
        return sum(c.params_b for c in self.components)

    @property
    def hub_url(self) -> str | None:
        return f"https://huggingface.co/{self.repo_id}" if self.repo_id else None


def diffusers_patterns(
    weights: tuple[str, ...], extras: tuple[str, ...], variant: str | None
) -> tuple[str, ...]:
    """allow_patterns for a diffusers repo: configs, the weights of ``variant`` only, no ONNX/OpenVINO/ckpt."""
    suffix = f"*.{variant}.safetensors" if variant else "*.safetensors"
    patterns = ["model_index.json"]
    for folder in weights:
        patterns += [f"{folder}/*.json", f"{folder}/{suffix}"]
    patterns += [f"{folder}/*" for folder in extras]
    return tuple(patterns)


_SDXL_COMPONENTS = (
    Component("text_encoder", 0.123, "encode"),
    Component("text_encoder_2", 0.695, "encode"),
    Component("unet", 2.567, "denoise"),
    Component("vae", 0.084, "decode"),
)
_SDXL_FILES = diffusers_patterns(
    ("text_encoder", "text_encoder_2", "unet", "vae"), ("scheduler", "tokenizer", "tokenizer_2"), "fp16"
)
# SDXL at 1344x768, batch 2: UNet activations ~1 GB; VAE decode ~2.5 GB in 16-bit (HF blog "simple
# SDXL optimizations": ~4.9 GB per 1024^2 image with the fp32-upcast VAE); tiles of 1024 px bound it.
_SDXL_MEMORY = MemoryFacts(denoise_gb=1.0, decode_gb=2.5, decode_tiled_gb=1.9, group_fraction=0.3,
                           vae_upcast_fp16=True, step_seconds=0.15, decode_seconds=0.4)

_TINY_COMPONENTS = (Component("all", 0.002, "denoise"),)


def _tiny_memory(decode_unit: str = "tiled", chunking: float | None = None) -> MemoryFacts:
    """Tiny-set facts: negligible memory, but the same decode relief as the real model they stand in for.

    Step times are A100-equivalents: the planner's CPU slowdown turns them into ~0.1 s on 2 cores.
    """
    return MemoryFacts(denoise_gb=0.05, decode_gb=0.02, decode_tiled_gb=0.02, decode_unit=decode_unit,
                       forward_chunking_factor=chunking, step_seconds=0.0005, decode_seconds=0.0005)


_TINY_NOTE = ("test model set: output is noise",)

MODELS: dict[str, ModelRef] = {
    ref.key: ref
    for ref in (
        ModelRef("sdxl-base", "StableDiffusionXLPipeline", "stabilityai/stable-diffusion-xl-base-1.0",
                 revision="462165984030d82259a11f4367a4eed129e94a7b",
                 variant="fp16", label="SDXL base 1.0", width=1344, height=768,
                 licence="CreativeML Open RAIL++-M", allow_patterns=_SDXL_FILES, size_gb=6.5,
                 components=_SDXL_COMPONENTS, memory=_SDXL_MEMORY,
                 scale_options=(0.75, 0.5)),
        ModelRef("sdxl-turbo", "StableDiffusionXLPipeline", "stabilityai/sdxl-turbo",
                 revision="71153311d3dbb46851df1931d3ca6e939de83304", variant="fp16",
                 label="SDXL-Turbo (quick preset)", width=512, height=512,
                 licence="Stability AI Non-Commercial Research Community licence", allow_patterns=_SDXL_FILES,
                 size_gb=6.5, components=_SDXL_COMPONENTS,
                 # 512x512 is a quarter of SDXL's pixels; guidance 0, so no CFG batch.
                 memory=MemoryFacts(denoise_gb=0.25, decode_gb=0.7, decode_tiled_gb=0.7, group_fraction=0.3,
                                    vae_upcast_fp16=True, step_seconds=0.04, decode_seconds=0.1),
                 cfg=False, default_steps=4),
        ModelRef("svd-xt", "StableVideoDiffusionPipeline", "stabilityai/stable-video-diffusion-img2vid-xt",
                 revision="9e43909513c6714f1bc78bcb44d96e733cd242aa",
                 variant="fp16", label="Stable Video Diffusion XT", width=1024, height=576, frames=25, fps=7,
                 gated=True, licence="Stability AI Community licence (accept it on the Hub first)",
                 allow_patterns=diffusers_patterns(("image_encoder", "unet", "vae"),
                                                   ("feature_extractor", "scheduler"), "fp16"),
                 size_gb=4.2,
                 components=(Component("image_encoder", 0.632, "encode"), Component("unet", 1.524, "denoise"),
                             Component("vae", 0.098, "decode")),
                 # 25 frames at 1024x576, batch 2: ~6 GB; model offload + forward chunking + decode chunk 2
                 # stays under 8 GB (diffusers SVD docs). 39.85 s end to end on an A100 (25 steps).
                 memory=MemoryFacts(denoise_gb=6.0, decode_gb=0.55, decode_unit="chunked",
                                    forward_chunking_factor=0.55, group_fraction=0.3, vae_upcast_fp16=True,
                                    step_seconds=1.45, decode_seconds=3.5),
                 frame_options=(25, 14), scale_options=(0.75,)),
        ModelRef("cogvideox-5b-i2v", "CogVideoXImageToVideoPipeline", "THUDM/CogVideoX-5b-I2V",
                 revision="a6f0f4858a8395e7429d82493864ce92bf73af11",
                 label="CogVideoX-5B image-to-video", width=720, height=480, frames=49, fps=8,
                 max_sequence_length=226, licence="CogVideoX licence (commercial use needs registration)",
                 allow_patterns=diffusers_patterns(("text_encoder", "transformer", "vae"),
                                                   ("scheduler", "tokenizer"), None),
                 size_gb=19.6,
                 components=(Component("text_encoder", 4.762, "encode"),
                             Component("transformer", 5.570, "denoise"), Component("vae", 0.216, "decode")),
                 # README: ~26 GB without offload (VAE tiled), ~5 GB with sequential offload + VAE
                 # slicing and tiling; untiled decode of 49 frames at 720x480 ~18 GB. 180 s on an A100.
                 memory=MemoryFacts(denoise_gb=3.5, decode_gb=18.0, decode_tiled_gb=4.0, group_fraction=0.08,
                                    step_seconds=3.4, decode_seconds=10.0),
                 # Learned positional embeddings lock the resolution; frame counts stay 4k+1.
                 frame_options=(49, 33, 17)),
        # Keyframe engines (conditioned where the storyboard says), the studio's first choice.
        # LTX-Video 0.9.5 is the 2B release in diffusers format that interpolates between several image
        # conditions (the later 2B distilled weights are single-file only); it is the light engine too.
        ModelRef("ltx-2b", "LTXConditionPipeline", "Lightricks/LTX-Video-0.9.5",
                 revision="e58e28c39631af4d1468ee57a853764e11c1d37e", label="LTX-Video 2B (0.9.5)",
                 width=768, height=512, frames=121, fps=24, max_sequence_length=128,
                 licence="LTX-Video 0.9.5 licence (open weights; see the model card)",
                 allow_patterns=diffusers_patterns(("text_encoder", "transformer", "vae"),
                                                   ("scheduler", "tokenizer"), None),
                 size_gb=14.8,
                 # 0.9.5's VAE (2048 channels, timestep-conditioned decoder) is 1.247B, not 0.9.0's 0.419B: built on
                 # the meta device from its published config (bench/engine_configs.py; tests/test_bench_pipeline.py).
                 components=(Component("text_encoder", 4.762, "encode"), Component("transformer", 1.923, "denoise"),
                             Component("vae", 1.247, "decode")),
                 # Estimates, not measured here: 121 frames at 768x512 are only 16x16x24 latent tokens
                 # (x32 spatial, x8 temporal compression), so activations are small; the VAE decode of
                 # 121 frames is the peak unless tiled.
                 memory=MemoryFacts(denoise_gb=1.5, decode_gb=9.0, decode_tiled_gb=2.0, group_fraction=0.1,
                                    step_seconds=0.25, decode_seconds=4.0),
                 frame_options=(121, 97, 65, 33), scale_options=(0.75, 0.5), low_memory=True,
                 conditioning="keyframes", notes=("keyframes at frame indices, one call per window; native 24-30 fps",)),
        ModelRef("ltx-13b-distilled", "LTXConditionPipeline", "Lightricks/LTX-Video-0.9.7-distilled",
                 revision="057509edea1493cae5e62e9d8f780ebda3fb4333",
                 label="LTX-Video 13B distilled (0.9.7, quick preset)", width=768, height=512, frames=121, fps=24,
                 max_sequence_length=128, licence="LTX-Video 0.9.7 licence (open weights; see the model card)",
                 allow_patterns=diffusers_patterns(("text_encoder", "transformer", "vae"),
                                                   ("scheduler", "tokenizer"), None),
                 size_gb=35.5,
                 # Built on the meta device from the published 0.9.7 configs (bench/engine_configs.py): the transformer
                 # is 13.043B (48 layers of 32 x 128) and the VAE is 0.9.5's, 1.247B (0.419B was 0.9.0's); T5 as ltx-2b.
                 components=(Component("text_encoder", 4.762, "encode"),
                             Component("transformer", 13.043, "denoise"), Component("vae", 1.247, "decode")),
                 memory=MemoryFacts(denoise_gb=3.0, decode_gb=9.0, decode_tiled_gb=2.0, group_fraction=0.05,
                                    step_seconds=1.0, decode_seconds=4.0),
                 cfg=False, default_steps=8, frame_options=(121, 97, 65, 33), scale_options=(0.75, 0.5),
                 conditioning="keyframes", notes=("step-distilled: 8 steps, guidance 1.0 (model card)",)),
        ModelRef("wan-flf2v-14b", "WanImageToVideoPipeline", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
                 revision="17c30769b1e0b5dcaa1799b117bf20a9c31f59d7",
                 label="Wan 2.1 first-last-frame 14B (720p)", width=1280, height=720, frames=81, fps=16,
                 max_sequence_length=512, licence="Apache-2.0",
                 allow_patterns=diffusers_patterns(("text_encoder", "image_encoder", "transformer", "vae"),
                                                   ("scheduler", "tokenizer", "image_processor"), None),
                 size_gb=42.5,
                 # 16.4B: the 14B text-to-video backbone plus image cross-attention (2.1B), as built from the config.
                 components=(Component("text_encoder", 5.681, "encode"), Component("image_encoder", 0.631, "encode"),
                             Component("transformer", 16.396, "denoise"), Component("vae", 0.127, "decode")),
                 # 81 frames at 1280x720: 21x45x80 = 75,600 tokens; attention dominates the step time.
                 memory=MemoryFacts(denoise_gb=10.0, decode_gb=14.0, decode_tiled_gb=3.0, group_fraction=0.05,
                                    step_seconds=20.0, decode_seconds=20.0),
                 frame_options=(81, 49, 33), scale_options=(0.75, 0.5),
                 conditioning="first_last", notes=("start and end keyframe per segment; 16 fps native",)),
        ModelRef("skyreels-v2-df-1.3b", "SkyReelsV2DiffusionForcingImageToVideoPipeline",
                 "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers",
                 revision="958acd63685c7e632e4b194549f2a703e34bd98b", label="SkyReels-V2 diffusion forcing 1.3B (540p)",
                 width=960, height=544, frames=97, fps=24, max_sequence_length=512,
                 licence="SkyReels-V2 community licence (see the model card)",
                 allow_patterns=diffusers_patterns(("text_encoder", "transformer", "vae"),
                                                   ("scheduler", "tokenizer"), None),
                 size_gb=13.5,
                 components=(Component("text_encoder", 5.681, "encode"), Component("transformer", 1.436, "denoise"),
                             Component("vae", 0.127, "decode")),
                 memory=MemoryFacts(denoise_gb=4.0, decode_gb=10.0, decode_tiled_gb=2.5, group_fraction=0.1,
                                    step_seconds=2.0, decode_seconds=10.0),
                 frame_options=(97, 57), scale_options=(0.75,),
                 conditioning="continuation", notes=("long video and Extend: continues from the previous frames (diffusion forcing)",)),
        # The tiny test set: same pipeline classes, random weights, output is noise.
        ModelRef("tiny-sdxl", "StableDiffusionXLPipeline", tiny_name="sdxl", label="tiny SDXL (test, noise)",
                 width=128, height=64, licence="test model", components=_TINY_COMPONENTS, memory=_tiny_memory(),
                 notes=_TINY_NOTE),
        ModelRef("tiny-svd", "StableVideoDiffusionPipeline", tiny_name="svd", label="tiny SVD (test, noise)",
                 width=128, height=64, frames=8, fps=4, licence="test model", components=_TINY_COMPONENTS,
                 memory=_tiny_memory("chunked", 0.5), notes=_TINY_NOTE),
        ModelRef("tiny-cogvideox-i2v", "CogVideoXImageToVideoPipeline", tiny_name="cogvideox-i2v",
                 label="tiny CogVideoX I2V (test, noise)", width=96, height=64, frames=9, fps=4,
                 max_sequence_length=16, licence="test model", components=_TINY_COMPONENTS,
                 memory=_tiny_memory(), notes=_TINY_NOTE),
        ModelRef("tiny-ltx", "LTXConditionPipeline", tiny_name="ltx-condition",
                 label="tiny LTX-Video (test, noise; light engine)", width=96, height=64, frames=33, fps=24,
                 max_sequence_length=16, licence="test model", components=_TINY_COMPONENTS, memory=_tiny_memory(),
                 low_memory=True, conditioning="keyframes", notes=_TINY_NOTE),
        ModelRef("tiny-wan-flf2v", "WanImageToVideoPipeline", tiny_name="wan-flf2v",
                 label="tiny Wan first-last-frame (test, noise)", width=32, height=32, frames=17, fps=16,
                 max_sequence_length=16, licence="test model", components=_TINY_COMPONENTS, memory=_tiny_memory(),
                 conditioning="first_last", notes=_TINY_NOTE),
        ModelRef("tiny-skyreels-df", "SkyReelsV2DiffusionForcingImageToVideoPipeline", tiny_name="skyreels-df",
                 label="tiny SkyReels-V2 diffusion forcing (test, noise)", width=64, height=48, frames=17, fps=24,
                 max_sequence_length=16, licence="test model", components=_TINY_COMPONENTS, memory=_tiny_memory(),
                 conditioning="continuation", notes=_TINY_NOTE),
    )
}

MODEL_SETS: dict[str, dict[str, str]] = {
    "default": {"keyframes": "sdxl-base", "keyframes-quick": "sdxl-turbo", "ltx": "ltx-2b",
                "ltx-quick": "ltx-13b-distilled", "wan": "wan-flf2v-14b", "skyreels": "skyreels-v2-df-1.3b",
                "svd": "svd-xt", "cogvideox": "cogvideox-5b-i2v", "low-memory": "ltx-2b"},
    "tiny": {"keyframes": "tiny-sdxl", "keyframes-quick": "tiny-sdxl", "ltx": "tiny-ltx", "ltx-quick": "tiny-ltx",
             "wan": "tiny-wan-flf2v", "skyreels": "tiny-skyreels-df", "svd": "tiny-svd",
             "cogvideox": "tiny-cogvideox-i2v", "low-memory": "tiny-ltx"},
}


# Finishing models: single weights files (no diffusers folder), found and checked by ``backend.models.finishing``
# and fetched like every preset (``python -m backend models download KEY``).
FINISHING_MODELS: dict[str, ModelRef] = {
    ref.key: ref
    for ref in (
        # xinntao's Real-ESRGAN x4plus (RRDBNet, BSD-3-Clause), the v0.1.0 release file as re-uploaded unchanged by
        # AMD; spandrel reads its BasicSR state dict ("params_ema") as the ESRGAN architecture. Pinned by content:
        # the release's SHA-256 (67,040,989 bytes), checked after download and before loading (docs/MODELS.md).
        ModelRef("realesrgan-x4plus", "spandrel", "amd/realesrgan-x4plus", label="Real-ESRGAN x4plus (upscaler)",
                 licence="BSD-3-Clause", allow_patterns=("RealESRGAN_x4plus.pth",), size_gb=0.07,
                 sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
                 notes=("x4 general-purpose upscaler; tiled; lanczos to the exact output size after it",)),
        # Practical-RIFE 4.9 (hzwer, MIT) in the 4.7 architecture that backend.models.rife implements, as released
        # for ComfyUI-Frame-Interpolation (rife49.pth, 21,345,274 bytes) and re-uploaded unchanged; pinned by content.
        ModelRef("rife-4.9", "IFNet", "lividtm/RIFE", label="RIFE 4.9 (frame interpolation)", licence="MIT",
                 allow_patterns=("rife49.pth",), size_gb=0.02,
                 sha256="e55fd00f3cc184e3c65961f4bb827a9da022e78eed36b055242c0ac30000d533",
                 notes=("arbitrary-timestep intermediate flow estimation (Huang et al., ECCV 2022)",)),
        ModelRef("tiny-upscaler", "spandrel", tiny_name="upscaler", label="tiny upscaler (test, noise)",
                 licence="test model", allow_patterns=("upscaler.pth",), notes=_TINY_NOTE),
        ModelRef("tiny-rife", "IFNet", tiny_name="rife", label="tiny RIFE IFNet (test, noise)",
                 licence="test model", allow_patterns=("rife-tiny.pth",), notes=_TINY_NOTE),
    )
}
FINISHING_SETS: dict[str, dict[str, str]] = {
    "default": {"upscaler": "realesrgan-x4plus", "rife": "rife-4.9"},
    "tiny": {"upscaler": "tiny-upscaler", "rife": "tiny-rife"},
}


def finishing_model_for(model_set: str, role: str) -> ModelRef:
    """The upscaler or RIFE model of a model set (``default`` real weights, ``tiny`` random-weight twins)."""
    try:
        return FINISHING_MODELS[FINISHING_SETS[model_set][role]]
    except KeyError as exc:
        raise ValueError(f"No finishing model for role '{role}' in model set '{model_set}'.") from exc


def model_for(model_set: str, role: str) -> ModelRef:
    try:
        return MODELS[MODEL_SETS[model_set][role]]
    except KeyError as exc:
        raise ValueError(f"No model for role '{role}' in model set '{model_set}'.") from exc


def motion_model_for(model_set: str, engine: str, preset: str) -> ModelRef:
    """The motion model of an engine: the Quick preset takes the step-distilled one where there is one."""
    quick = f"{engine}-quick"
    if preset == "quick" and quick in MODEL_SETS[model_set]:
        return model_for(model_set, quick)
    return model_for(model_set, engine)


def keyframe_model_for(model_set: str, preset: str) -> ModelRef:
    """The keyframe model of a quality preset: SDXL-Turbo for ``quick``, SDXL base otherwise."""
    return model_for(model_set, "keyframes-quick" if preset == "quick" else "keyframes")


def find_model(name: str) -> ModelRef:
    """A preset by registry key, for the CLI and the Models page; ValueError lists the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'. Known models: {', '.join(MODELS)}.") from None
