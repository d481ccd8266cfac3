"""AppTest: the Create page and the live job panel (no model run: the orchestrator has no worker here)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from ui_support import TINY_PROMPT, fill_tiny_job, idle_studio, new_app, open_page, run, studio_home, texts  # noqa: F401 - fixtures

from app_pages.common import generator
from backend.media.luts import identity_cube, write_cube
from backend.spec import JobSpec

FORM_KEYS = {
    "text_area": ["c_prompt", "c_negative", "c_enhanced"],
    "radio": ["c_mode", "c_models", "c_preset", "c_aspect"],
    "number_input": ["c_duration", "c_seed", "c_guidance", "c_steps", "c_keyframes"],
    "selectbox": ["c_fps", "c_size", "c_engine", "c_grade", "c_stabilize", "c_interpolation", "c_upscale"],
    "slider": ["c_motion", "c_sharpen", "c_crf"],
    "toggle": ["c_seed_random", "c_colour_match", "c_deflicker"],
    "button": ["c_dice", "c_generate"],
}


def _png(size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_create_page_has_every_control(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    assert [t.value for t in at.title] == ["Create"]
    for kind, keys in FORM_KEYS.items():
        for key in keys:
            assert getattr(at, kind)(key=key) is not None, f"missing {kind} {key}"
    assert "Test models — output is noise" in at.radio(key="c_models").options
    assert "Pre-flight check" in texts(at)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "CPU only" in sidebar or "GB free" in sidebar  # the GPU badge, on every page
    assert "0 running" in sidebar


def test_prompt_analysis_is_live_and_editable(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.text_area(key="c_prompt").input(TINY_PROMPT)
    run(at)
    page = texts(at)
    for expected in ("ocean waves", "beach", "crashing", "photoreal", "golden hour"):
        assert expected in page
    enhanced = at.text_area(key="c_enhanced").value
    assert enhanced.startswith(TINY_PROMPT) and "golden hour light" in enhanced
    at.text_area(key="c_enhanced").input("my own words, oil painting")
    run(at)
    assert "edited enhanced prompt will be used" in texts(at)
    at.text_area(key="c_prompt").input("a cat walking in a garden")
    run(at)  # a new prompt replaces the stale edit
    assert at.text_area(key="c_enhanced").value.startswith("a cat walking in a garden")


def test_test_models_choice_sets_fast_defaults_and_dice_fixes_seed(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at)
    assert at.number_input(key="c_duration").value == 2.0 and at.selectbox(key="c_fps").value == 8
    assert "output is noise" in texts(at)
    at.button(key="c_dice").click()
    run(at)
    assert at.toggle(key="c_seed_random").value is False
    assert 0 <= at.number_input(key="c_seed").value < 2**32


def test_invalid_input_shows_an_error_and_queues_nothing(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.button(key="c_generate").click()
    run(at)
    assert any("prompt is empty" in e.value.replace("\\", "") for e in at.error)
    at.radio(key="c_mode").set_value("i2v")
    at.text_area(key="c_prompt").input("a boat")
    run(at)
    at.button(key="c_generate").click()
    run(at)
    assert any("needs an image" in e.value.replace("\\", "") for e in at.error)
    assert generator().history() == []
    assert [t.value for t in at.title] == ["Create"]


def test_generate_queues_a_tiny_job_and_opens_the_live_panel(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at)
    at.button(key="c_generate").click()
    run(at)
    assert [t.value for t in at.title] == ["Live job"]
    job_id = at.query_params["job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    spec = generator().status(job_id).spec
    assert (spec["model_set"], spec["width"], spec["height"], spec["fps"]) == ("tiny", 256, 144, 8)
    assert {k: spec["finish"][k] for k in ("interpolation", "upscale", "colour_match", "deflicker")} == {
        "interpolation": "flow", "upscale": "lanczos", "colour_match": "auto", "deflicker": 0}
    assert spec["prompt"] == TINY_PROMPT  # the unedited enhancement is left to the backend
    assert "Waiting in the queue" in texts(at)

    # A refresh (a fresh session with the job in the URL) reopens that job, not the queue's head.
    other = generator().submit(JobSpec(prompt="another tab's job", model_set="tiny", width=256, height=144))
    again = run(new_app())
    again.query_params["job"] = other
    again = open_page(again, "app_pages/live_job.py")
    assert "another tab's job" in texts(again) and TINY_PROMPT not in texts(again)

    at.button(key=f"cancel_{job_id}").click()
    run(at)
    assert generator().status(job_id).state == "cancelled"
    run(at)
    assert "cancelled" in texts(at) and at.button(key=f"requeue_{job_id}") is not None


def test_uploads_are_checked_and_client_names_are_never_paths(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.radio(key="c_mode").set_value("i2v")
    run(at)
    at.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"))
    run(at)
    assert any("not a readable image" in e.value.replace("\\", "") for e in at.error)

    evil = "../../<img src=x onerror=alert(1)>.png"
    at.file_uploader[0].set_value((evil, _png(), "image/png"))
    run(at)
    assert not at.error
    uploads = generator().paths.uploads
    stored = [p for p in uploads.rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].is_relative_to(uploads) and "img" not in stored[0].name
    shown = [c.value for c in at.caption if "onerror" in c.value]
    assert shown and all(c.startswith("Using \\<img") and "/" not in c for c in shown)  # escaped, no folders


def test_user_text_is_never_rendered_as_html(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    hostile = '<img src=x onerror="alert(1)"> **bold** [link](javascript:alert(1))'
    at = run(new_app())
    fill_tiny_job(at, prompt=hostile)
    at.button(key="c_generate").click()
    run(at)
    assert [t.value for t in at.title] == ["Live job"]
    assert hostile in [t.value for t in at.text]  # shown verbatim as plain text
    for element in at.markdown:
        assert not element.proto.allow_html
        assert "<img" not in element.value


def test_lut_upload_is_validated_and_used(idle_studio: Path, tmp_path: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.file_uploader[0].set_value(("look.cube", b"LUT_3D_SIZE 2\n0 0 0\n1 1\n", "application/octet-stream"))
    run(at)
    assert any("look.cube" in e.value.replace("\\", "") for e in at.error)  # which file, which line
    cube = tmp_path / "look.cube"
    write_cube(identity_cube(3), cube)
    at.file_uploader[0].set_value(("look.cube", cube.read_bytes(), "application/octet-stream"))
    run(at)
    assert not at.error and "3×3×3 LUT" in texts(at)
    fill_tiny_job(at)
    at.button(key="c_generate").click()
    run(at)
    job_id = at.query_params["job"]
    lut = generator().status(job_id[0] if isinstance(job_id, list) else job_id).spec["finish"]["lut"]
    assert Path(lut).is_relative_to(generator().paths.uploads / "luts") and Path(lut).is_file()


def test_the_form_survives_a_visit_to_another_page(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at)
    at.text_area(key="c_enhanced").input("my own enhanced words")
    run(at)
    at = open_page(at, "app_pages/gallery.py")
    at = open_page(at, "app_pages/create.py")
    assert at.text_area(key="c_prompt").value == TINY_PROMPT
    assert at.text_area(key="c_enhanced").value == "my own enhanced words"
    assert at.radio(key="c_models").value == "tiny" and at.selectbox(key="c_size").value == "256x144"


def test_finishing_choices_reach_the_spec_with_one_line_help(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at)
    for key in ("c_interpolation", "c_upscale", "c_colour_match", "c_deflicker"):
        widget = at.selectbox(key=key) if key in ("c_interpolation", "c_upscale") else at.toggle(key=key)
        assert widget.help and "\n" not in widget.help, key
    at.selectbox(key="c_interpolation").set_value("rife")
    at.selectbox(key="c_upscale").set_value("model")
    at.toggle(key="c_colour_match").set_value(False)
    at.toggle(key="c_deflicker").set_value(True)
    run(at)
    at.button(key="c_generate").click()
    run(at)
    job_id = at.query_params["job"]
    finish = generator().status(job_id[0] if isinstance(job_id, list) else job_id).spec["finish"]
    assert (finish["interpolation"], finish["upscale"], finish["colour_match"], finish["deflicker"]) == (
        "rife", "model", "off", 5)
