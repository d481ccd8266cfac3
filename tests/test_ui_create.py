"""AppTest: the Create page and the live job panel (no model run: the orchestrator has no worker here)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from ui_support import (  # noqa: F401 - fixtures
    TINY_PROMPT,
    fill_tiny_job,
    idle_studio,
    install_generator,
    new_app,
    open_page,
    run,
    studio_home,
    texts,
)

from app_pages.common import generator, shutdown_generators
from backend.media.luts import identity_cube, write_cube
from backend.models import store
from backend.models.download_manager import DownloadTask
from backend.spec import FinishOptions, JobSpec, LoraChoice

FAKE_JOB = "f" * 32

FORM_KEYS = {
    "text_area": ["c_prompt", "c_negative", "c_enhanced"],
    "radio": ["c_mode", "c_models", "c_preset", "c_aspect"],
    "number_input": ["c_duration", "c_seed", "c_guidance", "c_steps", "c_keyframes"],
    "selectbox": ["c_fps", "c_size", "c_engine", "c_grade", "c_stabilize", "c_interpolation", "c_upscale",
                  "c_planner", "c_consistency", "cs_pick"],
    "slider": ["c_motion", "c_sharpen", "c_crf"],
    "toggle": ["c_seed_random", "c_colour_match", "c_deflicker", "c_review"],
    "text_input": ["cs_name"],
    "button": ["c_dice", "c_generate", "cs_save", "cs_load", "cs_delete", "v_generate"],
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


def test_the_storyboard_plan_shows_each_keyframe_with_its_time(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.text_area(key="c_prompt").input("a dragon made of smoke uncoiling above a burning castle, not at night")
    at.number_input(key="c_keyframes").set_value(4)
    run(at)
    (table,) = [d for d in at.dataframe if "keyframe prompt" in d.value.columns]
    rows = table.value.to_dict("records")
    assert [r["at"] for r in rows] == ["0.0 s", "1.3 s", "2.7 s", "4.0 s"]  # the real models' 4 s default
    assert len({r["keyframe prompt"] for r in rows}) == 4  # the action moves on from one to the next
    assert all("night" not in r["keyframe prompt"] for r in rows) and "uncoil" in rows[-1]["keyframe prompt"]


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
    # What Streamlit does to the form's values when a fragment run on another page (the live panel polls
    # every second) is followed by a page switch: they are gone from the session (issue 16, bug 1).
    for key in ("c_prompt", "c_enhanced", "c_models", "c_size"):
        del at.session_state[key]
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


# --- issue 16: the form keeps what the user set -------------------------------------------------------
def _capture_submit(monkeypatch: pytest.MonkeyPatch) -> list[JobSpec]:
    """Record what Generate submits (the spec exactly as the form built it), queueing nothing."""
    captured: list[JobSpec] = []
    monkeypatch.setattr(generator(), "submit", lambda spec: captured.append(spec) or FAKE_JOB)
    return captured


def _private_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # -> VideoGenerator
    """A models folder of the test's own (after ``studio_home``), and an orchestrator without a worker."""
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    return install_generator(start_worker=False)


def test_switching_real_and_test_models_keeps_what_the_user_set(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    at.number_input(key="c_duration").set_value(3.5)
    run(at)
    fill_tiny_job(at)  # the switch changes the defaults the user left alone (size, fps), not the duration
    assert (at.number_input(key="c_duration").value, at.selectbox(key="c_fps").value) == (3.5, 8)
    at.radio(key="c_models").set_value("default")
    run(at)
    assert (at.selectbox(key="c_size").value, at.selectbox(key="c_fps").value) == ("1920x1080", 24)
    assert at.number_input(key="c_duration").value == 3.5


def test_advanced_fields_return_to_the_preset_default(idle_studio: Path, monkeypatch) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    fill_tiny_job(at)
    for key, value in (("c_guidance", 9.5), ("c_steps", 12), ("c_keyframes", 3)):
        widget = at.number_input(key=key)
        # No default number: the browser lets the field be emptied (before, clearing it gave 0.00 or 1).
        assert not widget.proto.HasField("default") and "preset default" in widget.proto.placeholder, key
        widget.set_value(value)
        run(at)
        at.number_input(key=key).set_value(None)
        run(at)
        assert at.number_input(key=key).value is None, key
    assert "(7)" in at.number_input(key="c_guidance").proto.placeholder  # the Standard preset's value, shown
    captured = _capture_submit(monkeypatch)
    at.button(key="c_generate").click()
    run(at)
    assert (captured[0].guidance, captured[0].steps, captured[0].keyframes) == (None, None, None)


def test_reuse_reproduces_every_setting_of_the_earlier_job(
        studio_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    gen = _private_models(tmp_path, monkeypatch)
    (gen.paths.models / "loras").mkdir(parents=True)
    (gen.paths.models / "loras" / "ink.safetensors").write_bytes(b"\0" * 16)
    from backend.media.uploads import store_lut

    cube = tmp_path / "look.cube"
    write_cube(identity_cube(3), cube)
    lut = store_lut(cube.read_bytes(), "look.cube", gen.paths.uploads).path
    finish = FinishOptions(interpolation="blend", aspect="fill", grade="noir", lut=str(lut), sharpen=1.3,
                           stabilize="deshake", crf=35, encoder="h264_nvenc", upscale="model", colour_match="off",
                           deflicker=9)
    earlier = JobSpec(
        prompt="a lighthouse in a storm", negative_prompt="people", preset="high", duration=3.5, fps=10, width=640,
        height=360, seed=1234, guidance=9.5, steps=12, keyframes=5, engine="wan", motion_strength=0.8,
        model_set="tiny", finish=finish, enhanced_prompt="my own words: a lighthouse, oil painting, storm at dusk",
        review=True, planner="llm", consistency="ip-adapter", loras=(LoraChoice("ink.safetensors", 0.65, "motion"),),
    ).validate()
    at = run(new_app())
    at.session_state["reuse_spec"] = earlier.to_dict()  # what Gallery's "Open in Create" hands over
    run(at)
    assert at.text_area(key="c_enhanced").value == earlier.enhanced_prompt  # not the derived one
    captured = _capture_submit(monkeypatch)
    at.button(key="c_generate").click()
    run(at)
    assert captured and captured[0].to_dict() == earlier.to_dict()


def test_missing_models_are_named_downloaded_and_block_generate(
        studio_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    gen = _private_models(tmp_path, monkeypatch)

    class Downloads:  # the DownloadManager's interface, without the network
        def __init__(self) -> None:
            self.tasks: dict[str, DownloadTask] = {}

        def start(self, ref):
            return self.tasks.setdefault(ref.key, DownloadTask(ref.key, total=4000, done=1000))

        def task(self, ref):
            return self.tasks.get(ref.key)

    gen.downloads = Downloads()
    at = run(new_app())
    at.text_area(key="c_prompt").input("a red fox running through snow")
    run(at)
    page = texts(at)
    assert "Fits this machine: not downloaded" in page and "Fits this machine: yes" not in page
    assert "sdxl-base" in page or "SDXL base" in page
    assert at.button(key="c_generate").disabled and "Generate waits until" in page
    at.button(key="c_download_models").click()
    run(at)
    started = set(gen.downloads.tasks)
    assert "sdxl-base" in started and all(gen.downloads.tasks[k].running for k in started)
    assert any("Downloading sdxl-base" in p.proto.text.replace("\\", "") for p in at.get("progress"))
    assert at.button(key="c_generate").disabled

    for key in started:  # the downloads finish
        folder = gen.paths.models / key
        folder.mkdir(parents=True)
        (folder / "model_index.json").write_text("{}")
        (folder / store.COMPLETE_MARKER).write_text("{}")
        gen.downloads.tasks[key].state = "done"
    run(at)
    assert "not downloaded" not in texts(at) and not at.button(key="c_generate").disabled

    fill_tiny_job(at)  # the test models build themselves: never missing
    assert "not downloaded" not in texts(at)


def test_storyboard_choices_and_loras_reach_the_spec(
        studio_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - pytest fixture
    gen = _private_models(tmp_path, monkeypatch)
    at = run(new_app())
    fill_tiny_job(at)
    assert "No LoRA files: put .safetensors files in models/loras or upload on the Models page" in texts(at)
    folder = gen.paths.models / "loras"
    folder.mkdir(parents=True)
    for name in ("style.safetensors", ".hidden.safetensors", "notes.txt"):
        (folder / name).write_bytes(b"\0" * 16)
    run(at)
    assert at.multiselect(key="c_loras").options == ["style.safetensors"]
    at.toggle(key="c_review").set_value(True)
    at.selectbox(key="c_planner").set_value("llm")
    at.selectbox(key="c_consistency").set_value("img2img")
    at.multiselect(key="c_loras").select("style.safetensors")
    run(at)
    at.slider(key="c_lora_weight::style.safetensors").set_value(0.6)
    at.radio(key="c_lora_target::style.safetensors").set_value("motion")
    run(at)
    for widget in (at.toggle(key="c_review"), at.selectbox(key="c_planner"), at.selectbox(key="c_consistency"),
                   at.multiselect(key="c_loras"), at.slider(key="c_lora_weight::style.safetensors")):
        assert widget.help and "\n" not in widget.help, widget.key
    captured = _capture_submit(monkeypatch)
    at.button(key="c_generate").click()
    run(at)
    spec = captured[0]
    assert (spec.review, spec.planner, spec.consistency) == (True, "llm", "img2img")
    assert spec.loras == (LoraChoice("style.safetensors", 0.6, "motion"),)


def test_help_says_what_each_control_does(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    at = run(new_app())
    expected = {"c_guidance": "literally", "c_steps": "slower", "c_keyframes": "storyboard", "c_motion": "still",
                "c_stabilize": "vid.stab", "c_grade": "colour look", "c_crf": "file", "c_preset": "Quick"}
    for key, words in expected.items():
        widget = next(w for kind in ("number_input", "slider", "selectbox", "radio")
                      for w in getattr(at, kind) if w.key == key)
        assert words in widget.help and not widget.help.startswith("Empty"), key
    assert any("teal shadows" in option for option in at.selectbox(key="c_grade").options)


def test_saved_settings_and_the_last_used_ones_after_a_restart(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    from app_pages.saved_settings import settings_file

    at = run(new_app())
    fill_tiny_job(at)
    at.selectbox(key="c_grade").set_value("noir")
    at.number_input(key="c_duration").set_value(3.0)
    run(at)
    at.text_input(key="cs_name").input("noir tests")
    at.button(key="cs_save").click()
    run(at)
    assert "Saved as “noir tests”" in texts(at)
    at.selectbox(key="c_grade").set_value("warm")
    at.number_input(key="c_duration").set_value(5.0)
    at.text_area(key="c_prompt").input("a different prompt")
    run(at)
    at.selectbox(key="cs_pick").set_value("noir tests")
    at.button(key="cs_load").click()
    run(at)
    assert (at.selectbox(key="c_grade").value, at.number_input(key="c_duration").value) == ("noir", 3.0)
    assert at.text_area(key="c_prompt").value == "a different prompt"  # a preset is how, not what

    at.button(key="c_generate").click()
    run(at)
    assert [t.value for t in at.title] == ["Live job"]
    shutdown_generators()  # a restart: a new orchestrator, a new session
    install_generator(start_worker=False)
    after = run(new_app())
    assert after.text_area(key="c_prompt").value == "a different prompt"
    assert (after.radio(key="c_models").value, after.selectbox(key="c_grade").value) == ("tiny", "noir")
    assert after.selectbox(key="cs_pick").options == ["noir tests"]

    settings_file().write_text("{not json", encoding="utf-8")
    broken = run(new_app())
    assert "could not be read" in texts(broken) and broken.radio(key="c_models").value == "default"
