"""IP-Adapter for SDXL: an image prompt that keeps later keyframes on the subject of keyframe 0.

The real preset is h94's IP-Adapter for SDXL with the OpenCLIP ViT-H/14 image encoder (the ``vit-h``
variant: the 0.63 B-parameter encoder instead of ViT-bigG's 1.8 B). Its files keep the Hub repository's
layout under ``<models_root>/ip-adapter-sdxl/``, so the one ``pipe.load_ip_adapter(folder, ...)`` call
serves a download and the tiny twin alike. The tiny twin (random weights, output is noise) is built
offline into ``<models_root>/tiny/ip-adapter/``: a tiny ``CLIPVisionModelWithProjection`` and an
adapter file in h94's format whose tensors fit the tiny SDXL UNet.

    python -m backend models download ip-adapter-sdxl     # the real weights (about 3.2 GB)
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from backend.errors import ModelNotAvailable
from backend.models.registry import Component, ModelRef

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
MARKER_NAME = ".complete"
WEIGHTS = "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
IMAGE_ENCODER = "models/image_encoder"
DOWNLOAD_COMMAND = "python -m backend models download ip-adapter-sdxl"
# The tiny image encoder (a CLIP vision tower) and its embedding width, which the adapter projects.
TINY_ENCODER = {"hidden_size": 32, "intermediate_size": 37, "projection_dim": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "image_size": 32, "patch_size": 8}

IP_ADAPTERS: dict[str, ModelRef] = {
    ref.key: ref
    for ref in (
        # The commit pinned to h94/IP-Adapter in many public projects (docs/MODELS.md); not re-checked here.
        ModelRef("ip-adapter-sdxl", "IPAdapter", "h94/IP-Adapter",
                 revision="018e402774aeeddd60609b4ecdb7e298259dc729",
                 label="IP-Adapter SDXL (ViT-H image encoder)", licence="Apache-2.0 (image encoder: MIT)",
                 allow_patterns=(WEIGHTS, f"{IMAGE_ENCODER}/config.json", f"{IMAGE_ENCODER}/model.safetensors"),
                 size_gb=3.0,
                 # 70 cross-attention layers get to_k_ip/to_v_ip (2048 -> 640/1280) plus the image projection:
                 # 0.35 B (the 698 MB fp16 file); the ViT-H/14 vision tower is 0.63 B (2.5 GB in fp32).
                 components=(Component("image_encoder", 0.632, "encode"), Component("ip_adapter", 0.349, "denoise")),
                 notes=("keeps later keyframes on keyframe 0's subject, palette and place",)),
        ModelRef("tiny-ip-adapter", "IPAdapter", tiny_name="ip-adapter", label="tiny IP-Adapter (test, noise)",
                 licence="test model", allow_patterns=(WEIGHTS,), notes=("test model set: output is noise",)),
    )
}
IP_ADAPTER_SETS = {"default": "ip-adapter-sdxl", "tiny": "tiny-ip-adapter"}


def ip_adapter_for(model_set: str) -> ModelRef:
    return IP_ADAPTERS[IP_ADAPTER_SETS[model_set]]


def adapter_folder(ref: ModelRef, models_root: Path) -> Path:
    return Path(models_root) / ("tiny" if ref.is_tiny else "") / (ref.tiny_name or ref.key)


def is_available(ref: ModelRef, models_root: Path) -> bool:
    """Whether the weights are on disk (the tiny twin counts: it is built on first use, offline)."""
    if ref.is_tiny:
        return True
    folder = adapter_folder(ref, models_root)
    return all((folder / name).is_file() for name in ref.allow_patterns)


def not_downloaded(ref: ModelRef, models_root: Path) -> ModelNotAvailable:
    return ModelNotAvailable(f"{ref.label} is not downloaded: run `{DOWNLOAD_COMMAND}` ({ref.size_gb:.1f} GB "
                             f"from {ref.hub_url} into {adapter_folder(ref, models_root)}), or choose another "
                             "consistency (img2img or independent).")


def check_consistency(consistency: str, model_set: str, models_root: Path) -> None:
    """Admission: an explicit ``ip-adapter`` needs its weights (``auto`` falls back to img2img instead)."""
    if consistency == "ip-adapter":
        ref = ip_adapter_for(model_set)
        if not is_available(ref, models_root):
            raise not_downloaded(ref, models_root)


def ensure_adapter(ref: ModelRef, models_root: Path) -> Path:
    """The folder to hand ``load_ip_adapter``; builds the tiny twin, ModelNotAvailable for missing weights."""
    if ref.is_tiny:
        return _ensure_tiny(ref, Path(models_root))
    if not is_available(ref, models_root):
        raise not_downloaded(ref, models_root)
    return adapter_folder(ref, models_root)


def with_adapter(model: ModelRef, adapter: ModelRef) -> ModelRef:
    """``model`` with the adapter's parts added, so the memory planner counts them (same key: same pipeline)."""
    return replace(model, components=model.components + adapter.components)


# --- the tiny twin --------------------------------------------------------------------------------------

def _ensure_tiny(ref: ModelRef, models_root: Path) -> Path:
    from backend.models.tiny import build_once

    return build_once(models_root / "tiny" / str(ref.tiny_name), FORMAT_VERSION,
                      lambda staging: build_tiny(staging, models_root))


def _complete(folder: Path) -> bool:
    from backend.models.tiny import marked_complete

    return marked_complete(folder, FORMAT_VERSION)


def build_tiny(folder: Path, models_root: Path) -> None:
    """A random-weight image encoder and an adapter file (h94's format) fitted to the tiny SDXL's UNet."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from backend.models.tiny import ensure_tiny_model

    unet_config = json.loads((ensure_tiny_model("sdxl", models_root) / "unet" / "config.json").read_text())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_ENCODER))
        encoder.save_pretrained(folder / IMAGE_ENCODER, safe_serialization=True)
        tensors = adapter_tensors(unet_config, TINY_ENCODER["projection_dim"])
    (folder / WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS))


def adapter_tensors(unet_config: dict, embed_dim: int, num_tokens: int = 4) -> dict:
    """Random IP-Adapter tensors named as h94 names them: ``image_proj.*`` and ``ip_adapter.<n>.to_[kv]_ip``.

    ``<n>`` counts the UNet's attention processors in diffusers' order, odd numbers for the cross-attention
    ones (what ``_convert_ip_adapter_attn_to_diffusers`` reads); each maps the text width to its block width.
    """
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(unet_config)
    cross = int(unet_config["cross_attention_dim"])
    channels = list(unet_config["block_out_channels"])
    tensors = {"image_proj.proj.weight": torch.randn(cross * num_tokens, embed_dim) * 0.2,
               "image_proj.proj.bias": torch.randn(cross * num_tokens) * 0.2,
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for kind in ("k", "v"):
            tensors[f"ip_adapter.{key_id}.to_{kind}_ip.weight"] = torch.randn(hidden, cross) * cross ** -0.5
        key_id += 2
    return {key: value.contiguous() for key, value in tensors.items()}
