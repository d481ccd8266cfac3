"""Model upscalers (Real-ESRGAN family and the rest of what spandrel recognises) with tiled inference.

The weights file is loaded by spandrel, which detects the architecture from the state dict; a frame is
cut into ``tile`` x ``tile`` tiles, each run with ``overlap`` pixels of context on every side, and only
each tile's own area of the output kept, so the seams fall where both neighbours saw the same context.
Half precision on a GPU where the architecture supports it (bf16, else fp16), fp32 on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import ModelNotAvailable
from backend.models.registry import ModelRef

DEFAULT_OVERLAP = 16


@dataclass(frozen=True)
class Tiling:
    tile: int  # input pixels per tile side
    overlap: int  # context pixels added on each side of a tile


def tiling_for(device: str, free_bytes: int | None = None) -> Tiling:
    """Tiles sized for the device: 192 px on the CPU; on a GPU, as big as a quarter of its free memory allows."""
    if device == "cpu" or free_bytes is None:
        return Tiling(192, DEFAULT_OVERLAP)
    # RRDBNet x4 in 16-bit needs roughly 60 KB of activations per input pixel (measured figures published
    # for Real-ESRGAN put a 512 px tile near 12 GB in fp32); stay within a quarter of what is free.
    side = int((free_bytes / 4 / 60_000) ** 0.5)
    return Tiling(max(128, min(1024, side - side % 32)), DEFAULT_OVERLAP * 2)


class Upscaler:
    def __init__(self, descriptor, label: str, device: str, tiling: Tiling) -> None:
        self.descriptor, self.label, self.device, self.tiling = descriptor, label, device, tiling
        self.scale = int(descriptor.scale)
        self.dtype_name = str(descriptor.dtype).replace("torch.", "")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import torch

        height, width = frame.shape[:2]
        tile, overlap, scale = self.tiling.tile, self.tiling.overlap, self.scale
        source = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
        out = np.empty((height * scale, width * scale, 3), np.uint8)
        with torch.inference_mode():
            for top in range(0, height, tile):
                for left in range(0, width, tile):
                    bottom, right = min(height, top + tile), min(width, left + tile)
                    y0, x0 = max(0, top - overlap), max(0, left - overlap)
                    y1, x1 = min(height, bottom + overlap), min(width, right + overlap)
                    patch = source[:, :, y0:y1, x0:x1].to(self.device, self.descriptor.dtype) / 255.0
                    result = self.descriptor(patch)[0]
                    keep = result[:, (top - y0) * scale: (bottom - y0) * scale, (left - x0) * scale: (right - x0) * scale]
                    out[top * scale: bottom * scale, left * scale: right * scale] = (
                        (keep.float() * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy())
        return out


def load_upscaler(ref: ModelRef, models_root: Path, device: str | None = None,
                  tiling: Tiling | None = None) -> Upscaler:
    """The upscaler in ``ref``'s weights file, loaded by spandrel exactly as any downloaded file is."""
    import torch

    from backend.models.finishing import weights_file

    try:
        from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError
    except ImportError as exc:  # spandrel needs torchvision, which only loads beside a CUDA build of torch
        raise ModelNotAvailable(
            "Model upscaling needs the GPU extras (spandrel and torchvision), which ./launch.sh installs only "
            "where PyTorch has CUDA (requirements-gpu.txt); on this machine use --upscale lanczos "
            f"({type(exc).__name__}: {exc}).") from exc
    path = weights_file(ref, models_root)  # after: the tiny twin is built with spandrel too
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        descriptor = ModelLoader(device=device).load_from_file(path)
    except (UnsupportedModelError, ValueError, RuntimeError, OSError) as exc:
        raise ModelNotAvailable(f"{path.name} is not an upscaler spandrel can read ({exc}); "
                                f"replace it with a Real-ESRGAN-family weights file.") from exc
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR":
        raise ModelNotAvailable(f"{path.name} is a {descriptor.architecture.name} model for "
                                f"'{descriptor.purpose}', not an upscaler; use a super-resolution model.")
    descriptor.eval()
    if device != "cpu":
        if descriptor.supports_bfloat16:
            descriptor.bfloat16()
        elif descriptor.supports_half:
            descriptor.half()
    if tiling is None:
        free = torch.cuda.mem_get_info()[0] if device.startswith("cuda") else None
        tiling = tiling_for("cpu" if device == "cpu" else device, free)
    return Upscaler(descriptor, f"{ref.label} ({descriptor.architecture.name} x{descriptor.scale})", device, tiling)
