"""Benchmark: the studio's finishing stage against one raw ffmpeg command doing the same work.

    python -m bench.finish [--frames 300] [--json]

Builds a synthetic 1024x576 clip (panning texture, a moving block, mild grain), then in the same
run times
  (a) the studio: ``finish()`` from frames held in memory to a verified 1080p30 H.264 MP4
      (streaming, progress, verification and the move into place all count), and
  (b) raw ffmpeg: one command reading the same frames from a raw RGB file on disk, with the
      filter graph and encoder options the studio used, and nothing else.
Prints both throughputs in frames/s and the ratio studio/raw (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from backend.media.clip import MemoryClip
from backend.media.video_io import ffmpeg_exe
from backend.record import FinishRecord
from backend.spec import FinishOptions
from backend.stages import export
from backend.stages.finish import FinishTarget, finish

OPTIONS = FinishOptions(interpolation="blend", aspect="fit", grade="cinematic", sharpen=0.8,
                      stabilize="off", crf=18, encoder="libx264")




def synthetic_frames(count: int, width: int = 1024, height: int = 576, seed: int = 0) -> list[np.ndarray]:
    """A camera pan over smooth colour texture with grain, plus a block crossing the frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0: height * 2, 0: width * 2].astype(np.float32)
    canvas = np.stack([128 + 100 * np.sin(xx / 37 + yy / 53),
                       128 + 90 * np.sin(xx / 23 - yy / 41),
                       128 + 80 * np.cos(xx / 61 + yy / 19)], axis=-1)
    canvas += rng.normal(0, 4, canvas.shape)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    frames = []
    for i in range(count):
        x = int(width / 2 + width / 3 * np.sin(i / 40))
        y = int(height / 2 + height / 3 * np.cos(i / 55))
        frame = canvas[y: y + height, x: x + width].copy()
        left = (i * 7) % max(1, width - 100)
        frame[height // 6: height // 6 + 100, left: left + 100] = (255, 200, 30)
        frames.append(frame)
    return frames


class Stopwatch:
    """Wall time, and CPU time of this process plus its finished children (ffmpeg).

    The machine may be shared: wall time is what a user waits, CPU time is what the work costs
    and barely moves when other processes compete for the cores.
    """

    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    try:
        import resource
    except ImportError:  # not Unix: this process only
        return time.process_time()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_studio(clip: MemoryClip, folder: Path, target: FinishTarget) -> tuple[Stopwatch, FinishRecord]:
    with Stopwatch() as watch:
        result = finish(clip, target=target, options=OPTIONS, workdir=folder / "work",
                        output_path=folder / "outputs" / "studio.mp4", metadata={"title": "bench"})
    return watch, result


def time_raw(raw_file: Path, clip: MemoryClip, graph: str, folder: Path, fps: int) -> tuple[Stopwatch, list[str]]:
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{clip.width}x{clip.height}",
            "-framerate", str(clip.fps), "-i", str(raw_file), "-vf", graph,
            *export.output_args(export.H264_X264, crf=OPTIONS.crf, metadata={"title": "bench"}, fps=fps),
            str(folder / "raw.mp4")]
    with Stopwatch() as watch:
        subprocess.run(args, check=True)
    return watch, args


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory_gb = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_gb, "python": platform.python_version(),
            "ffmpeg": version, "platform": platform.platform()}


def run(frames: int, fps: int, repeat: int) -> dict[str, object]:
    clip = MemoryClip(synthetic_frames(frames), fps)
    target = FinishTarget(1920, 1080, fps, frames)
    studio_runs: list[Stopwatch] = []
    raw_runs: list[Stopwatch] = []
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as tmp:
        folder = Path(tmp)
        raw_file = folder / "clip.rgb"
        with open(raw_file, "wb") as handle:
            for frame in clip.frames():
                handle.write(frame.tobytes())
        watch, result = time_studio(clip, folder, target)  # the studio's graph is what raw ffmpeg runs
        studio_runs.append(watch)
        for round_ in range(1, 2 * repeat):  # S R R S S R ...: drift in machine load hits both alike
            if round_ % 4 in (1, 2):
                watch, raw_args = time_raw(raw_file, clip, result.filter_graph, folder, target.fps)
                raw_runs.append(watch)
            else:
                watch, result = time_studio(clip, folder, target)
                studio_runs.append(watch)
    studio, raw = min(w.wall for w in studio_runs), min(w.wall for w in raw_runs)
    studio_cpu, raw_cpu = min(w.cpu for w in studio_runs), min(w.cpu for w in raw_runs)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "frames": frames,
        "source": f"{clip.width}x{clip.height}@{fps} in memory (studio) / raw RGB file (raw ffmpeg)",
        "output": f"{target.width}x{target.height}@{fps} {result.format}",
        "studio_seconds": round(studio, 2),
        "raw_seconds": round(raw, 2),
        "studio_fps": round(frames / studio, 2),
        "raw_fps": round(frames / raw, 2),
        "ratio": round(raw / studio, 3),
        "studio_cpu_seconds": round(studio_cpu, 2),
        "raw_cpu_seconds": round(raw_cpu, 2),
        "cpu_ratio": round(raw_cpu / studio_cpu, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "repeat": repeat,
        "all_wall_seconds": {"studio": [round(w.wall, 2) for w in studio_runs],
                             "raw": [round(w.wall, 2) for w in raw_runs]},
        "filter_graph": result.filter_graph,
        "raw_command": raw_args,
        "studio_steps": result.steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.finish", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames in the synthetic clip (default 300)")
    parser.add_argument("--fps", type=int, default=30, help="clip and output frame rate (default 30)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each side, interleaved S R R S; the best time of each counts (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.repeat < 1 or args.fps < 1:
        parser.error("--frames, --fps and --repeat must be positive")
    report = run(args.frames, args.fps, args.repeat)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores")
    print(f"clip:    {report['frames']} frames, {report['source']} -> {report['output']}")
    print(f"studio:  {report['studio_fps']} frames/s ({report['studio_seconds']} s)")
    print(f"raw:     {report['raw_fps']} frames/s ({report['raw_seconds']} s)")
    print(f"ratio:   {report['ratio']} (studio/raw throughput; CPU-time ratio {report['cpu_ratio']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
