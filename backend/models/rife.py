"""RIFE frame interpolation: IFNet as published with Practical-RIFE 4.7-4.9 (Huang et al., ECCV 2022,
"Real-Time Intermediate Flow Estimation for Video Frame Interpolation"), written here from the paper and
the published checkpoints' layout, with an arbitrary timestep.

IFNet estimates the *intermediate* flows F_t->0 and F_t->1 directly, coarse to fine, in four blocks at 1/8,
1/4, 1/2 and 1/1 of the frame. A small encoder gives each frame 4 feature channels at full size. The first
block sees both frames, both feature maps and the timestep plane; each later block sees the frames and
features warped by the current flows, the timestep, the current fusion mask and the flows, and adds a
correction to the flows and replaces the mask. A block downsamples twice with strided convolutions, refines
with eight residual convolutions (learned per-channel gain ``beta``, LeakyReLU 0.2) and upsamples with a
transposed convolution and a pixel shuffle. The frame at t is M * warp(I0, F_t->0) + (1 - M) * warp(I1,
F_t->1) with M = sigmoid(mask). The timestep is an input plane, so one network makes any t in (0, 1).

Module and parameter names follow the published ``rife47.pth``/``rife48.pth``/``rife49.pth`` state dicts,
so those files load as they are; block widths are read from the file (the tiny test twin is narrow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.errors import ModelNotAvailable
from backend.models.registry import ModelRef

SCALES = (8, 4, 2, 1)  # block i works at 1/SCALES[i] of the frame
WIDTHS = (192, 128, 96, 64)  # the published blocks' channels
RESIDUAL_CONVS = 8
FEATURES = 4  # encoder channels per frame
ALIGN = 64  # frames are padded to a multiple of this (the coarsest block: 1/8, then two stride-2 convs)
SLOPE = 0.2
# Peak memory of one frame's forward pass per padded pixel: 548 bytes measured in float32 on the CPU at
# 1088x1920 (RSS); half precision on a GPU needs less, so this is the conservative figure. Plus the weights.
BYTES_PER_PIXEL = 600
OVERHEAD_BYTES = 256 * 2**20


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(SLOPE))


class ResidualConv(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, SLOPE)


class IFBlock(nn.Module):
    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*[ResidualConv(width) for _ in range(RESIDUAL_CONVS)])
        # 4 flow channels + 1 mask (+ 1 unused) at twice the features' size, after the pixel shuffle
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        if scale != 1:
            x = _resize(x, (size[0] // scale, size[1] // scale))
        if flow is not None:
            flow = flow if scale == 1 else _resize(flow, x.shape[-2:]) / scale
            x = torch.cat([x, flow], 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = _resize(out, size)
        return out[:, :4] * scale, out[:, 4:5]


class IFNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] | list[int] = WIDTHS) -> None:
        super().__init__()
        if len(widths) != len(SCALES):
            raise ValueError(f"IFNet has {len(SCALES)} blocks, got {len(widths)} widths")
        first = 3 + 3 + 2 * FEATURES + 1  # I0, I1, their features, t
        later = first + 1 + 4  # warped versions of the same, + the mask, + the flows
        self.block0 = IFBlock(first, int(widths[0]))
        self.block1 = IFBlock(later, int(widths[1]))
        self.block2 = IFBlock(later, int(widths[2]))
        self.block3 = IFBlock(later, int(widths[3]))
        self.encode = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ConvTranspose2d(16, FEATURES, 4, 2, 1))

    @property
    def blocks(self) -> tuple[IFBlock, ...]:
        return self.block0, self.block1, self.block2, self.block3

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float) -> torch.Tensor:
        """The frame at ``t`` between ``img0`` and ``img1`` (N, 3, H, W in [0, 1]; H, W multiples of ALIGN)."""
        img0, img1 = img0.clamp(0, 1), img1.clamp(0, 1)
        batch, _, height, width = img0.shape
        plane = img0.new_full((batch, 1, height, width), float(t))
        feat0, feat1 = self.encode(img0), self.encode(img1)
        flow, mask = self.block0(torch.cat([img0, img1, feat0, feat1, plane], 1), None, SCALES[0])
        for block, scale in zip(self.blocks[1:], SCALES[1:]):
            to0, to1 = flow[:, :2], flow[:, 2:4]
            seen = [warp(img0, to0), warp(img1, to1), warp(feat0, to0), warp(feat1, to1), plane, mask]
            correction, mask = block(torch.cat(seen, 1), flow, scale)
            flow = flow + correction
        weight = torch.sigmoid(mask)
        return (warp(img0, flow[:, :2]) * weight + warp(img1, flow[:, 2:4]) * (1 - weight)).clamp(0, 1)


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at each pixel + ``flow`` (pixels; x then y), bilinear, border-clamped.

    In float32 whatever the model's dtype: a half-precision grid cannot place a sample within a pixel on a
    frame wider than about 1000 pixels (normalised coordinates keep only ~3 decimal digits)."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=image.device, dtype=torch.float32),
                            torch.arange(width, device=image.device, dtype=torch.float32), indexing="ij")
    x = (xs + flow[:, 0].float()) * (2 / max(1, width - 1)) - 1
    y = (ys + flow[:, 1].float()) * (2 / max(1, height - 1)) - 1
    grid = torch.stack([x, y], -1)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)


# --- checkpoints ----------------------------------------------------------------------------------------

def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a RIFE checkpoint: a ``.pth`` as published (tensors only: ``weights_only``) or
    ``.safetensors``; the ``module.`` prefix of checkpoints saved from DistributedDataParallel is dropped."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is one sentence
            raise ModelNotAvailable(f"{path.name} could not be read as a RIFE checkpoint ({exc}).") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelNotAvailable(f"{path.name} is not a RIFE state dict (a mapping of names to tensors).")
    return {k.removeprefix("module."): v for k, v in state.items()}


def ifnet_from_state(state: dict[str, torch.Tensor], name: str) -> IFNet:
    """An IFNet holding ``state``; widths come from the file. A checkpoint of another RIFE release (4.6
    and older have no encoder, 4.10 and newer a larger one) is refused in one sentence naming the releases."""
    try:
        widths = [int(state[f"block{i}.conv0.1.0.weight"].shape[0]) for i in range(len(SCALES))]
        net = IFNet(widths)
    except (KeyError, ValueError, IndexError):
        net = None
    if net is not None:
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected == found:
            net.load_state_dict(state)
            return net
        odd = sorted(set(expected.items()) ^ set(found.items()))
        detail = f"first difference: {odd[0][0]}" if odd else ""
    else:
        detail = "no four IFNet blocks"
    raise ModelNotAvailable(f"{name} is not a RIFE 4.7-4.9 checkpoint (rife47.pth, rife48.pth, rife49.pth), the "
                            f"layout this studio loads ({detail}); use --interpolation flow, or replace the file.")


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


def memory_needed(width: int, height: int) -> int:
    """Bytes RIFE needs on its device for frames of this size (padded as the network sees them)."""
    return (width + -width % ALIGN) * (height + -height % ALIGN) * BYTES_PER_PIXEL + OVERHEAD_BYTES


def choose_device(width: int, height: int, cuda_free: int | None) -> tuple[str, str | None]:
    """The GPU when one is there with room for frames of this size, else the CPU and the sentence saying why."""
    if cuda_free is None:
        return "cpu", None
    need = memory_needed(width, height)
    if cuda_free >= need:
        return "cuda", None
    return "cpu", (f"on the CPU: the GPU has {cuda_free / 2**30:.1f} GB free and RIFE needs about "
                   f"{need / 2**30:.1f} GB at {width}x{height}")


def load_rife(ref: ModelRef, models_root: Path, device: str | None = None,
              frame_size: tuple[int, int] | None = None) -> RifeInterpolator:
    """RIFE from its weights file (ModelNotAvailable, naming the fix, when it is not there or not RIFE 4.7-4.9).

    Without ``device``, the GPU is used when free GPU memory (read now) holds frames of ``frame_size``."""
    from backend.models.finishing import weights_file

    path = weights_file(ref, models_root)
    net = ifnet_from_state(read_state_dict(path), f"{path.name} ({ref.label})")
    label = ref.label
    if device is None:
        cuda_free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
        width, height = frame_size or (1920, 1080)
        device, why = choose_device(width, height, cuda_free)
        label = f"{label}, {why}" if why else label
    target = torch.device(device)
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    net = net.to(target, dtype).eval()
    return RifeInterpolator(net, target, dtype, label)


def load_rife_interpolator(model_set: str = "default", models_root: Path | None = None) -> RifeInterpolator:
    """The bench's entry point: the model set's RIFE from the studio's models folder."""
    from backend.models.registry import finishing_model_for
    from backend.paths import runtime_paths

    ref = finishing_model_for("default" if model_set == "rife" else model_set, "rife")
    return load_rife(ref, models_root or runtime_paths().models)
