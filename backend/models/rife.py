"""RIFE frame interpolation: an IFNet written here from the paper's description (Huang et al., ECCV 2022,
"Real-Time Intermediate Flow Estimation for Video Frame Interpolation"), with an arbitrary timestep.

IFNet estimates the *intermediate* flows F_t->0 and F_t->1 directly, coarse to fine: each IFBlock sees
the two frames (and, after the first, the frames warped by the current estimate, the flows and the
fusion mask) at a reduced scale, downsamples twice with strided convolutions, refines with a stack of
residual conv + PReLU layers, and upsamples to a correction of the flows and the mask. The timestep t
is an extra input plane, so one network makes any t in (0, 1). The frame at t is
M * warp(I0, F_t->0) + (1 - M) * warp(I1, F_t->1) with M = sigmoid(mask).

Weights: a safetensors state dict of this module with a JSON config beside it (channels per block,
residual depth); see ``backend.models.finishing`` for where the file comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.models.registry import ModelRef

SCALES = (4, 2, 1)  # each block works at 1/scale of the frame
ALIGN = 64  # frames are padded to a multiple of this (the coarsest block downsamples 4 x 4 x 2)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


class IFBlock(nn.Module):
    def __init__(self, cin: int, width: int, depth: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(_conv(cin, width // 2, 2), _conv(width // 2, width, 2))
        self.refine = nn.Sequential(*[_conv(width, width) for _ in range(depth)])
        self.decode = nn.ConvTranspose2d(width, 5, 4, 2, 1)  # 4 flow channels + 1 mask, at half the input size

    def forward(self, x: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        if scale != 1:
            x = F.interpolate(x, scale_factor=1 / scale, mode="bilinear", align_corners=False)
        feat = self.encode(x)
        feat = self.refine(feat) + feat
        out = F.interpolate(self.decode(feat), size=size, mode="bilinear", align_corners=False)
        return out[:, :4] * scale * 2, out[:, 4:5]


class IFNet(nn.Module):
    def __init__(self, channels: list[int] | tuple[int, ...] = (192, 128, 96), depth: int = 6) -> None:
        super().__init__()
        first = 3 + 3 + 1  # I0, I1, t
        later = first + 3 + 3 + 4 + 1  # + both warped frames, the flows, the mask
        self.blocks = nn.ModuleList(
            [IFBlock(first if i == 0 else later, int(c), depth) for i, c in enumerate(channels)])

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        batch, _, height, width = img0.shape
        plane = img0.new_full((batch, 1, height, width), float(t))
        flow = mask = None
        warped0, warped1 = img0, img1
        for block, scale in zip(self.blocks, SCALES[-len(self.blocks):]):
            if flow is None:
                flow, mask = block(torch.cat([img0, img1, plane], 1), scale)
            else:
                d_flow, d_mask = block(torch.cat([img0, img1, plane, warped0, warped1, flow, mask], 1), scale)
                flow, mask = flow + d_flow, mask + d_mask
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return (warped0 * weight + warped1 * (1 - weight)).clamp(0, 1)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at each pixel + ``flow`` (pixels; x then y), bilinear, border-clamped."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=image.device, dtype=image.dtype),
                            torch.arange(width, device=image.device, dtype=image.dtype), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(1, width - 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(1, height - 1)) - 1
    return F.grid_sample(image, torch.stack([x, y], -1), mode="bilinear", padding_mode="border", align_corners=True)


class RifeInterpolator:
    """The ``pair(a, b) -> at(t)`` interpolator of ``backend.media.interpolation``, on the model's device."""

    name = "rife"

    def __init__(self, net: IFNet, device: torch.device, dtype: torch.dtype, label: str) -> None:
        self.net, self.device, self.dtype, self.label = net, device, dtype, label

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None]
        x = x.to(self.dtype) / 255.0
        height, width = frame.shape[:2]
        pad_h, pad_w = -height % ALIGN, -width % ALIGN
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x

    def pair(self, first: np.ndarray, second: np.ndarray) -> Callable[[float], np.ndarray]:
        height, width = first.shape[:2]
        a, b = self._tensor(first), self._tensor(second)

        def at(t: float) -> np.ndarray:
            with torch.inference_mode():
                out = self.net(a, b, t)[0, :, :height, :width]
            return (out.float() * 255 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()

        return at


def load_rife(ref: ModelRef, models_root: Path, device: str | None = None) -> RifeInterpolator:
    """RIFE from its weights file (ModelNotAvailable, naming the fix, when it is not there)."""
    from safetensors.torch import load_file

    from backend.models.finishing import weights_file

    path = weights_file(ref, models_root)
    config_path = path.with_suffix(".json")
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    net = IFNet(**config)
    net.load_state_dict(load_file(str(path)))
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    net = net.to(target, dtype).eval()
    return RifeInterpolator(net, target, dtype, ref.label)


def load_rife_interpolator(model_set: str = "default", models_root: Path | None = None) -> RifeInterpolator:
    """The bench's entry point: the model set's RIFE from the studio's models folder."""
    from backend.models.registry import finishing_model_for
    from backend.paths import runtime_paths

    ref = finishing_model_for("default" if model_set == "rife" else model_set, "rife")
    return load_rife(ref, models_root or runtime_paths().models)
