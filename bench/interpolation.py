"""Benchmark: frame interpolation against ground truth.

    python -m bench.interpolation [--json] [--size 960x540] [--seconds 2] [--from-fps 10] [--to-fps 30]

Renders clips whose every in-between frame is known (the scenes are continuous in time):
  pan        a camera panning over a detailed texture
  object     a textured disc crossing a still textured background
  occlusion  a bar sweeping in front of a second moving object over a panning background
Each is sampled at ``--from-fps`` (the kept frames) and at ``--to-fps`` (the truth); each method
recovers the ``--to-fps`` clip from the kept frames, and the frames that fall between kept frames are
scored (PSNR over RGB, SSIM on luma) against the truth. Methods: ``flow`` (the studio's default,
Python + OpenCV), ``blend`` and ``minterpolate`` (ffmpeg's framerate / minterpolate filters as the
finish graph uses them), and ``rife`` when its real weights are downloaded. Speed: output frames/s
for each method at 1920x1080 on the pan scene (the same 10 -> 30 conversion); ``--rife-random-weights``
adds RIFE's speed and GPU memory at the published network's size (random weights: no quality figures).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

import cv2
import numpy as np

from backend.media.interpolation import FlowInterpolator, positions, retime
from backend.media.video_io import ffmpeg_exe
from backend.stages.filtergraph import fps_filters, rate_text
from bench.finish import machine

Scene = Callable[[float], np.ndarray]  # seconds -> RGB frame


def texture(width: int, height: int, seed: int) -> np.ndarray:
    """Detail at several scales (fine grain to broad colour), like a real photograph's texture."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for sigma, amount in ((1.0, 30), (4.0, 50), (16.0, 70), (48.0, 80)):
        noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        image += amount * noise / (noise.std() + 1e-6)
    return np.clip(128 + image, 0, 255).astype(np.uint8)


def _shift(image: np.ndarray, dx: float, dy: float, size: tuple[int, int]) -> np.ndarray:
    """``size`` pixels of ``image`` starting at (dx, dy), sub-pixel (bilinear)."""
    matrix = np.float32([[1, 0, -dx], [0, 1, -dy]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def scenes(width: int, height: int) -> dict[str, Scene]:
    size = (width, height)
    speed = width / 960  # pixels scale with the picture
    canvas = texture(width * 2, height * 2, 1)
    still = texture(width, height, 2)
    disc_tex = texture(height // 2, height // 2, 3)
    yy, xx = np.mgrid[0: height // 2, 0: height // 2].astype(np.float32)
    radius = height / 4 - 1
    disc_mask = np.clip(radius - np.hypot(xx - radius, yy - radius), 0, 1)[..., None]
    bar_tex = texture(width // 10, height, 4)

    def place(background: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x: float, y: float) -> np.ndarray:
        matrix = np.float32([[1, 0, x], [0, 1, y]])
        moved = cv2.warpAffine(sprite, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = alpha[..., None] if alpha.ndim == 2 else alpha
        return (background * (1 - alpha) + moved * alpha).astype(np.uint8)

    def pan(s: float) -> np.ndarray:
        return _shift(canvas, 40 + 180 * speed * s, 30 + 60 * speed * s, size)

    def obj(s: float) -> np.ndarray:
        return place(still, disc_tex, disc_mask, -height / 2 + 360 * speed * s, height / 4 + 40 * speed * s)

    def occlusion(s: float) -> np.ndarray:
        frame = _shift(canvas, 200 - 90 * speed * s, 100, size)
        frame = place(frame, disc_tex, disc_mask, width * 0.2 + 150 * speed * s, height / 4)
        bar_mask = np.ones(bar_tex.shape[:2], np.float32)
        return place(frame, bar_tex, bar_mask, width * 0.9 - 420 * speed * s, 0)

    return {"pan": pan, "object": obj, "occlusion": occlusion}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM on luma, Gaussian window sigma 1.5 (Wang et al. 2004)."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(value.mean())


def recover_ffmpeg(mode: str, kept: list[np.ndarray], src_fps: float, dst_fps: int, total: int) -> list[np.ndarray]:
    """The finish graph's frame-rate filter for ``mode`` on raw frames, read back raw."""
    height, width = kept[0].shape[:2]
    filters, _ = fps_filters(mode, src_fps, dst_fps, len(kept))
    graph = ",".join(filters + [f"tpad=stop_mode=clone:stop={total}", f"trim=end_frame={total}"])
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-framerate", rate_text(src_fps), "-i", "pipe:0", "-vf", graph,
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    data = subprocess.run(args, input=b"".join(f.tobytes() for f in kept), capture_output=True, check=True).stdout
    frames = np.frombuffer(data, np.uint8).reshape(-1, height, width, 3)
    return list(frames[:total])


def recover_python(interpolator, kept: list[np.ndarray], src_fps: float, dst_fps: int,
                   total: int) -> list[np.ndarray]:
    return list(retime(kept, positions(src_fps, dst_fps, total, len(kept)), interpolator))


def methods(models_root=None) -> dict[str, Callable[..., list[np.ndarray]]]:
    found: dict[str, Callable[..., list[np.ndarray]]] = {
        "flow": lambda *a: recover_python(FlowInterpolator(), *a),
        "minterpolate": lambda *a: recover_ffmpeg("minterpolate", *a),
        "blend": lambda *a: recover_ffmpeg("blend", *a),
    }
    try:
        from backend.models.rife import load_rife_interpolator
        rife = load_rife_interpolator("rife", models_root=models_root)
    except Exception as exc:  # noqa: BLE001 - not downloaded (or no torch): the table says so
        print(f"rife skipped: {exc}", file=sys.stderr)
    else:
        found["rife"] = lambda *a: recover_python(rife, *a)
    return found


def rife_random_speed(src_fps: float, dst_fps: int, frames: int = 7) -> dict[str, object]:
    """RIFE's speed and GPU memory at 1080p with the published network's size and random weights: the time and
    memory of a forward pass do not depend on the weight values (quality does, so none is reported)."""
    import torch

    from backend.models.rife import IFNet, RifeInterpolator

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    rife = RifeInterpolator(IFNet().to(device, dtype).eval(), device, dtype, "RIFE 4.9 layout, random weights")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fps = speed(lambda *a: recover_python(rife, *a), src_fps, dst_fps, frames)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"device": device.type, "dtype": str(dtype).removeprefix("torch."), "fps_1080p": fps,
            "peak_cuda_mib": round(peak, 1) if peak is not None else None}


def in_between(k: int, src_fps: float, dst_fps: int, src_count: int) -> bool:
    where = k * src_fps / dst_fps
    return where < src_count - 1 and abs(where - round(where)) > 1e-3


def score(scene: Scene, recover, seconds: float, src_fps: float, dst_fps: int) -> dict[str, float]:
    kept = [scene(i / src_fps) for i in range(int(seconds * src_fps) + 1)]
    total = round((len(kept) - 1) * dst_fps / src_fps) + 1
    started = time.perf_counter()
    made = recover(kept, src_fps, dst_fps, total)
    seconds_taken = time.perf_counter() - started
    scores = [(psnr(made[k], truth), ssim(made[k], truth))
              for k in range(total) if in_between(k, src_fps, dst_fps, len(kept))
              for truth in (scene(k / dst_fps),)]
    return {"psnr": round(float(np.mean([s[0] for s in scores])), 2),
            "ssim": round(float(np.mean([s[1] for s in scores])), 4),
            "frames": len(scores), "seconds": round(seconds_taken, 2)}


def speed(recover, src_fps: float, dst_fps: int, frames: int = 7) -> float:
    """Output frames/s at 1920x1080 on the pan scene (the whole conversion, piping included)."""
    pan = scenes(1920, 1080)["pan"]
    kept = [pan(i / src_fps) for i in range(frames)]
    total = round((frames - 1) * dst_fps / src_fps) + 1
    started = time.perf_counter()
    recover(kept, src_fps, dst_fps, total)
    return round(total / (time.perf_counter() - started), 2)


def run(width: int, height: int, seconds: float, src_fps: float, dst_fps: int,
        speed_frames: int = 7, rife_random: bool = False) -> dict[str, object]:
    table: dict[str, dict[str, object]] = {}
    for name, recover in methods().items():
        row: dict[str, object] = {scene: score(render, recover, seconds, src_fps, dst_fps)
                                  for scene, render in scenes(width, height).items()}
        row["mean_psnr"] = round(float(np.mean([row[s]["psnr"] for s in ("pan", "object", "occlusion")])), 2)
        row["mean_ssim"] = round(float(np.mean([row[s]["ssim"] for s in ("pan", "object", "occlusion")])), 4)
        row["fps_1080p"] = speed(recover, src_fps, dst_fps, speed_frames) if speed_frames else None
        table[name] = row
    flow = table["flow"]["mean_psnr"]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "conversion": f"{src_fps:g} -> {dst_fps} fps", "size": f"{width}x{height}", "seconds": seconds,
        "methods": table,
        "flow_minus_blend_db": round(flow - table["blend"]["mean_psnr"], 2),
        "flow_minus_minterpolate_db": round(flow - table["minterpolate"]["mean_psnr"], 2),
        "flow_speed_ratio_vs_minterpolate": (round(table["flow"]["fps_1080p"] / table["minterpolate"]["fps_1080p"], 2)
                                             if speed_frames else None),
        "rife_random_weights": rife_random_speed(src_fps, dst_fps, speed_frames or 7) if rife_random else None,
    }


def print_table(report: dict[str, object]) -> None:
    print(f"{report['conversion']} at {report['size']}, {report['seconds']} s per scene; "
          f"{report['machine']['cpu']}, {report['machine']['cores']} cores")
    print(f"{'method':<13}{'pan':>14}{'object':>14}{'occlusion':>14}{'mean PSNR':>11}{'SSIM':>8}{'fps@1080p':>11}")
    for name, row in report["methods"].items():
        cells = "".join(f"{row[s]['psnr']:>7.2f}/{row[s]['ssim']:.3f}" for s in ("pan", "object", "occlusion"))
        print(f"{name:<13}{cells}{row['mean_psnr']:>11.2f}{row['mean_ssim']:>8.3f}{row['fps_1080p']!s:>11}")
    print(f"flow - blend: {report['flow_minus_blend_db']:+.2f} dB (target +6); flow - minterpolate: "
          f"{report['flow_minus_minterpolate_db']:+.2f} dB (target +3); flow/minterpolate speed: "
          f"{report['flow_speed_ratio_vs_minterpolate']}")
    random = report.get("rife_random_weights")
    if random:
        print(f"rife at 1080p, published size, random weights (speed only): {random['fps_1080p']} frames/s on "
              f"{random['device']} ({random['dtype']}), peak CUDA memory {random['peak_cuda_mib']} MiB")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.interpolation", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="960x540", help="size the quality is measured at (default 960x540)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of each scene (default 2)")
    parser.add_argument("--from-fps", type=float, default=10, help="kept frame rate (default 10)")
    parser.add_argument("--to-fps", type=int, default=30, help="recovered frame rate (default 30)")
    parser.add_argument("--speed-frames", type=int, default=7, help="source frames of the 1080p speed run (0: skip)")
    parser.add_argument("--rife-random-weights", action="store_true",
                        help="also time RIFE at 1080p with the published size and random weights (speed and "
                             "memory only; slow on a CPU)")
    parser.add_argument("--json", action="store_true", help="print one JSON object after the table")
    args = parser.parse_args(list(argv) if argv is not None else None)
    width, height = (int(v) for v in args.size.lower().split("x"))
    report = run(width, height, args.seconds, args.from_fps, args.to_fps, args.speed_frames, args.rife_random_weights)
    print_table(report)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
