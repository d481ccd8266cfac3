"""Frame interpolation in Python (flow), its streaming plan, and the graph pieces around it."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import SpecError
from backend.media.interpolation import BlendInterpolator, FlowInterpolator, positions, retime
from backend.record import FinishRecord
from backend.spec import FinishOptions
from backend.stages import filtergraph
from bench.interpolation import psnr, scenes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("src, dst, seconds", [(8, 24, 2), (10, 30, 1), (24, 30, 1), (16, 24, 1)])
def test_positions_cover_any_rate_change(src: int, dst: int, seconds: int) -> None:
    plan = positions(src, dst, dst * seconds, src * seconds)
    assert len(plan) == dst * seconds
    for k, p in enumerate(plan):
        where = k * src / dst
        if where <= src * seconds - 1:
            assert p.index + p.t == pytest.approx(where, abs=1e-6)
        assert 0 <= p.t < 1 and 0 <= p.index < src * seconds
        if (k * src) % dst == 0:
            assert p.t == 0  # a source frame that lands on an output tick is kept as it is


def test_positions_past_the_end_hold_the_last_frame() -> None:
    plan = positions(8, 24, 30, 4)
    assert plan[-1].index == 3 and plan[-1].t == 0


def test_retime_streams_two_frames_at_a_time_and_is_exact() -> None:
    read = []

    def source():
        for i in range(8):
            read.append(i)
            yield np.full((8, 8, 3), i * 30, np.uint8)

    plan = positions(8, 24, 24, 8)
    out = []
    for k, frame in enumerate(retime(source(), plan, BlendInterpolator())):
        assert max(read) <= plan[k].index + 1  # never reads ahead of the pair it needs
        out.append(frame)
    assert len(out) == 24
    assert out[3][0, 0, 0] == 30 and out[4][0, 0, 0] == 40  # a kept frame, and one third of the way to the next


def test_retime_holds_the_last_frame_when_the_source_is_short() -> None:
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 90)]
    out = list(retime(frames, positions(10, 30, 12, 4), BlendInterpolator()))
    assert len(out) == 12 and out[-1][0, 0, 0] == 90


@pytest.mark.parametrize("scene, margin", [("pan", 6), ("object", 3)])
def test_flow_recovers_motion_far_better_than_blend(scene: str, margin: float) -> None:
    render = scenes(320, 180)[scene]
    a, b, truth = render(1.0), render(1.2), render(1.1)  # the disc well inside the frame
    flow = psnr(FlowInterpolator().pair(a, b)(0.5), truth)
    blend = psnr(BlendInterpolator().pair(a, b)(0.5), truth)
    assert flow > blend + margin, (flow, blend)


def test_flow_at_any_timestep_lands_between_the_frames() -> None:
    render = scenes(160, 96)["pan"]
    a, b = render(0.0), render(0.1)
    at = FlowInterpolator().pair(a, b)
    for t in (0.2, 0.5, 0.8):
        assert psnr(at(t), render(0.1 * t)) > 28


def test_graph_deflicker_and_python_methods() -> None:
    assert filtergraph.deflicker_filters(0) == ([], None)
    assert filtergraph.deflicker_filters(5) == (["deflicker=size=5:mode=am"], "deflicker:5 frames")
    source, out = filtergraph.SourceShape(64, 64, 8, 16), filtergraph.OutputShape(64, 64, 24, 48)
    graph = filtergraph.build_graph(source, out, FinishOptions(deflicker=7, grade="warm")).graph()
    assert graph.index("curves") < graph.index("deflicker=size=7") < graph.index("scale=")
    # flow/rife are made in Python; should the graph ever see a rate change for them, it blends
    assert filtergraph.fps_filters("flow", 8, 24, 16)[0] == ["framerate=fps=24"]


def test_options_validate_the_new_settings() -> None:
    assert FinishOptions().interpolation == "flow" and FinishOptions().colour_match == "auto"
    for bad in (dict(upscale="esrgan"), dict(deflicker=1), dict(deflicker=200), dict(colour_match="yes"),
                dict(interpolation="dain")):
        with pytest.raises(SpecError):
            FinishOptions(**bad).validate()


def test_finish_record_keeps_the_new_fields() -> None:
    record = FinishRecord(interpolation="flow", upscaler="x", upscale_tile=192, upscale_overlap=16, deflicker=5)
    again = FinishRecord.from_dict(record.to_dict())
    assert (again.interpolation, again.upscale_tile, again.deflicker) == ("flow", 192, 5)
    assert "upscaler" not in FinishRecord().to_dict()  # absent when lanczos only (older records read alike)
