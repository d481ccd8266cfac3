"""RIFE: the IFNet matches the published 4.7-4.9 checkpoints' layout, loads them as they are, refuses other
releases in one sentence, and its parts do what the architecture says (warping, the fusion mask, timesteps)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.errors import ModelNotAvailable
from backend.models.finishing import weights_file
from backend.models.registry import FINISHING_MODELS, finishing_model_for
from backend.models.rife import (
    IFNet,
    RifeInterpolator,
    choose_device,
    ifnet_from_state,
    load_rife,
    memory_needed,
    read_state_dict,
    warp,
)

pytestmark = pytest.mark.unit

# The published rife47/48/49.pth, transcribed from their description, not from backend.models.rife: each of
# four blocks (channels in, width) has conv0 = two stride-2 convs, eight residual convs with a per-channel
# gain, and a transposed conv to 24 channels; the encoder is conv(3->16, stride 2) + transposed conv(16->4).
PUBLISHED_BLOCKS = [(15, 192), (20, 128), (20, 96), (20, 64)]
PUBLISHED_TENSORS = 124
PUBLISHED_BYTES = 21_345_274  # rife49.pth on disk: float32 tensors plus the pickle's few kilobytes


def published_layout(blocks: list[tuple[int, int]]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (cin, c) in enumerate(blocks):
        shapes |= {f"block{i}.conv0.0.0.weight": (c // 2, cin, 3, 3), f"block{i}.conv0.0.0.bias": (c // 2,),
                   f"block{i}.conv0.1.0.weight": (c, c // 2, 3, 3), f"block{i}.conv0.1.0.bias": (c,)}
        for k in range(8):
            shapes |= {f"block{i}.convblock.{k}.conv.weight": (c, c, 3, 3),
                       f"block{i}.convblock.{k}.conv.bias": (c,), f"block{i}.convblock.{k}.beta": (1, c, 1, 1)}
        shapes |= {f"block{i}.lastconv.0.weight": (c, 24, 4, 4), f"block{i}.lastconv.0.bias": (24,)}
    return shapes | {"encode.0.weight": (16, 3, 3, 3), "encode.0.bias": (16,), "encode.1.weight": (16, 4, 4, 4),
                     "encode.1.bias": (4,)}


def random_state(shapes: dict[str, tuple[int, ...]], prefix: str = "") -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {prefix + k: torch.randn(*s, generator=generator) * 0.05 for k, s in shapes.items()}


def test_the_network_has_exactly_the_published_tensors() -> None:
    published = published_layout(PUBLISHED_BLOCKS)
    ours = {k: tuple(v.shape) for k, v in IFNet().state_dict().items()}
    assert ours == published and len(ours) == PUBLISHED_TENSORS
    floats = sum(int(np.prod(s)) for s in published.values())
    assert 0 < PUBLISHED_BYTES - 4 * floats < 64 * 1024  # the file is these tensors in float32, nothing else


def test_a_published_style_checkpoint_loads_with_or_without_the_ddp_prefix(tmp_path: Path) -> None:
    narrow = [(cin, 16) for cin, _ in PUBLISHED_BLOCKS]
    for prefix in ("", "module."):
        path = tmp_path / f"rife{prefix or 'plain'}.pth"
        torch.save(random_state(published_layout(narrow), prefix), path)
        net = ifnet_from_state(read_state_dict(path), path.name)
        assert [b.conv0[1][0].out_channels for b in net.blocks] == [16] * 4  # widths read from the file


@pytest.mark.parametrize("release, shapes, detail", [
    ("4.6", {k: v for k, v in published_layout([(7, 192), (12, 128), (12, 96), (12, 64)]).items()
             if not k.startswith("encode")}, "first difference: block0.conv0.0.0.weight"),  # no encoder
    ("4.10", published_layout(PUBLISHED_BLOCKS) | {"encode.cnn0.weight": (32, 3, 3, 3)}, "encode"),
    ("not RIFE", {"conv_first.weight": (64, 3, 3, 3)}, "no four IFNet blocks"),
])
def test_other_releases_are_refused_in_one_sentence(release: str, shapes: dict, detail: str) -> None:
    with pytest.raises(ModelNotAvailable) as caught:
        ifnet_from_state(random_state(shapes), f"rife-{release}.pth")
    message = str(caught.value)
    assert "not a RIFE 4.7-4.9 checkpoint (rife47.pth, rife48.pth, rife49.pth)" in message
    assert detail in message and "--interpolation flow" in message and "\n" not in message


def test_a_file_that_is_not_a_state_dict_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "rife49.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotAvailable, match=r"rife49\.pth could not be read as a RIFE checkpoint"):
        read_state_dict(tmp_path / "rife49.pth")


def test_the_real_preset_loads_its_pinned_file_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "rife-4.9" / "rife49.pth"
    path.parent.mkdir()
    torch.save(random_state(published_layout([(cin, 8) for cin, _ in PUBLISHED_BLOCKS])), path)
    ref = FINISHING_MODELS["rife-4.9"]
    with pytest.raises(ModelNotAvailable, match=r"not the published RIFE 4\.9 .*SHA-256.*models download rife-4\.9"):
        load_rife(ref, tmp_path, device="cpu")
    pinned = replace(ref, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    rife = load_rife(pinned, tmp_path, device="cpu")
    assert weights_file(pinned, tmp_path) == path and rife.label == "RIFE 4.9 (frame interpolation)"


# --- what the parts do ----------------------------------------------------------------------------------

def test_warp_moves_an_image_by_its_flow_even_in_half_precision_on_wide_frames() -> None:
    image = torch.rand(1, 3, 8, 1920)
    flow = torch.zeros(1, 2, 8, 1920)
    flow[:, 0] = 1.0
    assert torch.allclose(warp(image, flow)[..., :-1], image[..., 1:], atol=1e-3)
    flow[:, 0] = 0.5
    half = warp(image.to(torch.bfloat16), flow.to(torch.bfloat16)).float()
    expected = (image[..., :-1] + image[..., 1:]) / 2
    assert (half[..., :-1] - expected).abs().max() < 0.02  # bfloat16's own rounding, not a misplaced sample


@pytest.mark.parametrize("mask, expected", [(30.0, "first"), (-30.0, "second"), (0.0, "blend")])
def test_with_no_motion_the_mask_chooses_between_the_frames(mask: float, expected: str) -> None:
    net = IFNet((8, 8, 8, 8)).eval()
    with torch.no_grad():
        for block in net.blocks:  # every block: no flow; the last block's mask channel decides
            block.lastconv[0].weight.zero_()
            block.lastconv[0].bias.zero_()
            block.lastconv[0].bias[16:20] = mask  # pixel shuffle: channels 16-19 become output channel 4
    a, b = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        out = net(a, b, 0.3)
    want = {"first": a, "second": b, "blend": (a + b) / 2}[expected]
    assert torch.allclose(out, want, atol=1e-4)


@pytest.mark.tiny
def test_the_tiny_twin_is_a_published_style_file_and_makes_frames_at_any_timestep(tmp_path: Path) -> None:
    ref = finishing_model_for("tiny", "rife")
    rife = load_rife(ref, tmp_path, device="cpu")
    assert weights_file(ref, tmp_path).suffix == ".pth" and isinstance(rife, RifeInterpolator)
    frame = (np.random.default_rng(0).random((90, 130, 3)) * 255).astype(np.uint8)
    at = rife.pair(frame, np.roll(frame, 4, axis=1))
    outs = [at(t) for t in (1 / 3, 0.5, 0.8)]
    assert all(o.shape == frame.shape and o.dtype == np.uint8 for o in outs)  # unpadded to the frame's size
    assert not np.array_equal(outs[0], outs[2])  # t is an input of the network


def test_the_gpu_is_used_only_when_its_free_memory_holds_the_frames() -> None:
    gib = 2**30
    assert 1.3 * gib < memory_needed(1920, 1080) < 1.5 * gib  # padded to 1920x1088
    assert choose_device(1920, 1080, None) == ("cpu", None)  # no GPU
    assert choose_device(1920, 1080, 8 * gib) == ("cuda", None)
    device, why = choose_device(3840, 2160, 2 * gib)
    assert device == "cpu" and why == "on the CPU: the GPU has 2.0 GB free and RIFE needs about 4.9 GB at 3840x2160"
