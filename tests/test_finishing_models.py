"""Finishing that runs models or Python: colour matching across segments (unit), the tiny upscaler and
RIFE twins loaded from their files (tiny), and whole finishes with flow / rife / model upscale (ffmpeg)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from backend.errors import ModelNotAvailable
from backend.media.clip import Clip, MemoryClip, save_frames
from backend.media.colour import MatchedClip, match_segments, measure
from backend.models.registry import FINISHING_MODELS, finishing_model_for
from backend.spec import FinishOptions, JobSpec
from backend.stages import assemble
from backend.stages.context import StageContext
from backend.stages.finish import FinishTarget, finish
from bench.interpolation import scenes

pytestmark = pytest.mark.unit

PLAIN = FinishOptions(grade="none", sharpen=0.0)


def _segments(tmp_path: Path, shifts: tuple[int, ...]) -> list[Clip]:
    render = scenes(64, 48)["pan"]
    clips = []
    for n, shift in enumerate(shifts):
        frames = [np.clip(render(0.05 * (n * 4 + i)).astype(int) + shift, 0, 255).astype(np.uint8) for i in range(4)]
        clips.append(Clip(tuple(save_frames(frames, tmp_path / f"seg{n}")), 8, 64, 48))
    return clips


def test_colour_match_pulls_later_segments_to_the_first(tmp_path: Path) -> None:
    clips = _segments(tmp_path, (0, 25, -20))
    match = match_segments([list(c.frame_paths) for c in clips])
    matched = MatchedClip([p for c in clips for p in c.frame_paths], 8, 64, 48, match)
    frames = list(matched.frames())
    first, later = measure(frames[:4]), [measure(frames[4:8]), measure(frames[8:])]
    raw = [measure(c.frames()) for c in clips[1:]]
    for fixed, before in zip(later, raw):
        assert abs(fixed.mean[0] - first.mean[0]) < abs(before.mean[0] - first.mean[0]) / 3
    assert np.array_equal(frames[0], next(clips[0].frames()))  # the first segment is untouched
    assert "matched to segment 1" in match.summary


def _ctx(tmp_path: Path, colour_match: str) -> StageContext:
    spec = JobSpec(prompt="x", fps=8, duration=1.5, finish=FinishOptions(colour_match=colour_match))
    return StageContext(job_id="j", stage="assemble", spec=spec, workdir=tmp_path / "work",
                        cancel_event=threading.Event(), sink=lambda *a: None)


@pytest.mark.parametrize("setting", ["auto", "off"])
def test_assemble_matches_colour_of_multi_segment_jobs(tmp_path: Path, setting: str) -> None:
    clips = _segments(tmp_path, (0, 30, 30))
    result = assemble.run(_ctx(tmp_path, setting), assemble.AssembleInputs(clips, 8, 1.5))
    assert len(result.clip) == 12
    if setting == "auto":
        assert isinstance(result.clip, MatchedClip) and "segments 2-3" in result.record.colour_match
        assert "colour_match" in result.record.to_dict()
    else:
        assert result.record.colour_match is None and isinstance(result.clip, Clip)
    one = assemble.run(_ctx(tmp_path, "auto"), assemble.AssembleInputs(clips[:1], 8, 0.5))
    assert one.record.colour_match is None  # one segment: nothing to match


def test_missing_real_weights_say_how_to_fix(tmp_path: Path) -> None:
    from backend.models.finishing import weights_file

    with pytest.raises(ModelNotAvailable, match=r"models download realesrgan-x4plus.*--upscale lanczos"):
        weights_file(FINISHING_MODELS["realesrgan-x4plus"], tmp_path)
    with pytest.raises(ModelNotAvailable, match=r"RIFE.*not downloaded.*--interpolation flow"):
        weights_file(finishing_model_for("default", "rife"), tmp_path)


@pytest.mark.ffmpeg
@pytest.mark.tiny
def test_finish_with_rife_on_the_tiny_twin(tmp_path: Path) -> None:
    clip = MemoryClip([scenes(48, 32)["pan"](i / 8) for i in range(3)], 8)
    options = FinishOptions(interpolation="rife", grade="none", sharpen=0.0)
    result = finish(clip, target=FinishTarget(48, 32, 24, 9), options=options, workdir=tmp_path / "w",
                    output_path=tmp_path / "o.mp4", metadata={}, models_root=tmp_path / "models", model_set="tiny")
    assert result.frames == 9 and result.interpolation == "rife" and result.upscaler is None
    assert any(s.startswith("fps:rife 8->24 (RIFE (tiny RIFE IFNet") for s in result.steps)


# --- the tiny twins --------------------------------------------------------------------------------------

@pytest.mark.tiny
def test_without_the_gpu_extras_a_model_upscale_says_what_to_do(tmp_path: Path) -> None:
    """Where spandrel cannot be installed (a CPU-only torch), asking for it is one sentence with the way out."""
    try:
        import spandrel  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("spandrel is installed here: tests/test_upscaler_spandrel.py runs the upscaler instead")
    from backend.models.upscalers import load_upscaler

    with pytest.raises(ModelNotAvailable, match=r"GPU extras.*--upscale lanczos"):
        load_upscaler(finishing_model_for("tiny", "upscaler"), tmp_path, device="cpu")


# --- whole finishes ---------------------------------------------------------------------------------

@pytest.mark.ffmpeg
@pytest.mark.parametrize("src, dst", [(8, 24), (10, 30), (24, 30)])
def test_finish_with_flow_delivers_exact_frames(tmp_path: Path, src: int, dst: int) -> None:
    render = scenes(96, 64)["object"]
    clip = MemoryClip([render(1 + i / src) for i in range(src)], src)
    result = finish(clip, target=FinishTarget(96, 64, dst, dst), options=PLAIN, workdir=tmp_path / "w",
                    output_path=tmp_path / "o.mp4", metadata={})
    assert result.frames == dst and result.fps == dst and result.interpolation == "flow"
    assert any(s.startswith(f"fps:flow {src}->{dst}") for s in result.steps)
    assert "framerate" not in result.filter_graph and "minterpolate" not in result.filter_graph


@pytest.mark.ffmpeg
def test_with_vidstab_the_frames_made_in_python_are_made_once(tmp_path: Path, monkeypatch) -> None:
    from backend.media import interpolation
    from backend.media.video_io import iter_frames

    pairs, make = [], interpolation.FlowInterpolator.pair
    monkeypatch.setattr(interpolation.FlowInterpolator, "pair", lambda self, a, b: pairs.append(1) or make(self, a, b))
    render = scenes(96, 64)["object"]
    clip = MemoryClip([render(1 + i / 8) for i in range(8)], 8)
    options = FinishOptions(interpolation="flow", stabilize="vidstab", grade="none", sharpen=0.0)
    result = finish(clip, target=FinishTarget(96, 64, 24, 24), options=options, workdir=tmp_path / "w",
                    output_path=tmp_path / "o.mp4", metadata={})
    assert result.frames == 24 and any(s.startswith("stabilize:vidstab") for s in result.steps)
    assert len(pairs) == 7  # one flow per source pair: the encode pass reads what the analysis pass kept
    kept = list(iter_frames(tmp_path / "w" / "prepared_frames.mkv"))
    again = list(interpolation.retime(clip.frames(), interpolation.positions(8, 24, 24, 8),
                                      interpolation.FlowInterpolator()))
    assert len(kept) == 24 and all(np.array_equal(a, b) for a, b in zip(kept, again))  # bit-exact


@pytest.mark.ffmpeg
def test_cli_finish_flow_and_a_clear_message_without_rife_weights(tmp_path: Path, capsys, monkeypatch) -> None:
    from backend import cli

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    source = finish(MemoryClip([scenes(64, 48)["pan"](i / 8) for i in range(8)], 8),
                    target=FinishTarget(64, 48, 8, 8), options=FinishOptions(interpolation="none", grade="none",
                                                                             sharpen=0.0),
                    workdir=tmp_path / "w", output_path=tmp_path / "clip_8fps.mp4", metadata={}).file
    out = tmp_path / "out.mp4"
    assert cli.main(["finish", str(source), "--out", str(out), "--fps", "24", "--size", "64x48",
                     "--interpolation", "flow", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == 24 and data["interpolation"] == "flow"
    code = cli.main(["finish", str(source), "--out", str(tmp_path / "r.mp4"), "--fps", "24", "--size", "64x48",
                     "--interpolation", "rife"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "--interpolation flow" in err
    assert not (tmp_path / "r.mp4").exists()
