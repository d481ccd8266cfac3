"""What a job needs that is not on disk: every kind of model, named once, and refused at submit in one sentence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from backend.errors import SpecError
from backend.jobs.admission import admit
from backend.memory import detect_hardware, preflight
from backend.models import needs, store
from backend.models.registry import FINISHING_MODELS, MODELS
from backend.spec import FinishOptions, JobSpec

pytestmark = pytest.mark.unit

GPU_24 = detect_hardware(vram_gb=24, ram_gb=64)  # simulated: no torch, no NVML


def plan_for(spec: JobSpec) -> dict:
    return preflight(spec, GPU_24).to_dict()


@pytest.fixture(autouse=True)
def unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake downloads below are not the published files the single-file presets are pinned to
    (tests/test_download_kinds.py checks the pin)."""
    for ref in list(FINISHING_MODELS.values()):
        monkeypatch.setitem(FINISHING_MODELS, ref.key, replace(ref, sha256=None))


def fake_download(root: Path, key: str) -> None:
    """A preset that reads "downloaded": its files where its loader looks, and the completeness marker."""
    ref = needs.find_preset(key)
    folder = store.model_folder(ref, root)
    kind = needs.kind_of(ref)
    names = {needs.PIPELINE: ["model_index.json"], needs.WEIGHTS: [ref.allow_patterns[0]],
             needs.PLANNER: ["config.json", "tokenizer_config.json", "model.safetensors"],
             needs.IP_ADAPTER: list(ref.allow_patterns)}[kind]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    store.write_marker(folder, ref)


def test_a_default_job_needs_its_keyframe_and_motion_models_with_the_field_that_chose_them(tmp_path):
    spec = JobSpec(prompt="a red fox running through snow")
    missing = needs.missing_models(spec, tmp_path, plan_for(spec))
    assert [(m.ref.key, m.field, m.downloadable) for m in missing] == [
        ("sdxl-base", "preset", True), ("ltx-2b", "engine", True)]
    assert "6.5 GB, not downloaded" in missing[0].why
    (tmp_path / "ltx-2b" / "transformer").mkdir(parents=True)
    (tmp_path / "ltx-2b" / "transformer" / "config.json").write_text("{}")
    assert "partly downloaded" in needs.missing_models(spec, tmp_path, plan_for(spec))[1].why
    for key in ("sdxl-base", "ltx-2b"):
        fake_download(tmp_path, key)
    assert needs.missing_models(spec, tmp_path, plan_for(spec)) == []


def test_the_plan_decides_the_motion_model_and_a_skipped_keyframe_stage_needs_nothing(tmp_path):
    spec = JobSpec(prompt="waves", mode="i2v", image="/img.png", engine="skyreels")
    plan = preflight(spec, GPU_24)  # the Preflight object works as well as its dict
    assert plan.stage("keyframes").level == "skipped"
    assert [m.ref.key for m in needs.missing_models(spec, tmp_path, plan)] == ["skyreels-v2-df-1.3b"]
    svd = replace(spec, engine="svd")
    (gated,) = [m for m in needs.missing_models(svd, tmp_path, plan_for(svd)) if m.ref.key == "svd-xt"]
    assert "gated: accept its licence at https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt" \
        in gated.why


def test_finishing_planner_and_ip_adapter_choices_add_their_models(tmp_path):
    spec = JobSpec(prompt="a lighthouse", planner="llm", consistency="ip-adapter",
                   finish=FinishOptions(upscale="model", interpolation="rife"))
    missing = {m.ref.key: m for m in needs.missing_models(spec, tmp_path, plan_for(spec))}
    assert list(missing) == ["sdxl-base", "ltx-2b", "realesrgan-x4plus", "rife-4.9", "qwen2.5-1.5b-instruct",
                             "ip-adapter-sdxl"]
    assert [missing[k].field for k in list(missing)[2:]] == ["finish.upscale", "finish.interpolation", "planner",
                                                             "consistency"]
    assert all(m.downloadable for m in missing.values())  # RIFE too: rife49.pth, pinned by its SHA-256
    auto = replace(spec, consistency="auto", planner="rules", finish=FinishOptions())
    assert [m.ref.key for m in needs.missing_models(auto, tmp_path, plan_for(auto))] == ["sdxl-base", "ltx-2b"]


def test_the_tiny_set_is_never_missing(tmp_path):
    spec = JobSpec(prompt="x", model_set="tiny", planner="llm", consistency="ip-adapter",
                   finish=FinishOptions(upscale="model", interpolation="rife"))
    assert not needs.uses_downloads(spec) and needs.uses_downloads(JobSpec(prompt="x"))
    assert needs.missing_models(spec, tmp_path, plan_for(spec)) == []
    assert needs.missing_models(spec, tmp_path) == []


def test_without_a_plan_the_requested_models_are_named(tmp_path):
    spec = JobSpec(prompt="x", engine="wan")
    assert [m.ref.key for m in needs.missing_models(spec, tmp_path)] == ["sdxl-base", "wan-flf2v-14b"]
    assert [m.ref.key for m in needs.missing_models(replace(spec, engine="auto"), tmp_path)] == ["sdxl-base"]


def test_an_unfinished_download_is_partial_even_when_its_files_would_load(tmp_path):
    fake_download(tmp_path, "qwen2.5-1.5b-instruct")
    ref = needs.find_preset("qwen2.5-1.5b-instruct")
    assert needs.model_status(ref, tmp_path).state == "downloaded" and needs.verify_model(ref, tmp_path) == []
    (tmp_path / ref.key / needs.DOWNLOADING).parent.mkdir(parents=True)
    (tmp_path / ref.key / needs.DOWNLOADING).touch()  # what a cancelled download of ours leaves
    assert needs.model_status(ref, tmp_path).state == "partial"
    assert "partly downloaded" in needs.verify_model(ref, tmp_path)[0]
    spec = JobSpec(prompt="x", planner="llm")
    assert "qwen2.5-1.5b-instruct" in [m.ref.key for m in needs.missing_models(spec, tmp_path, plan_for(spec))]


def test_the_sentence_names_every_model_and_what_fetches_them():
    refs = [MODELS["sdxl-base"], MODELS["svd-xt"]]
    missing = [needs.MissingModel(ref, ref.key, downloadable=True) for ref in refs]
    no_repo = replace(needs.find_preset("rife-4.9"), repo_id=None)
    missing.append(needs.MissingModel(no_repo, "RIFE has no public download", False))
    text = needs.missing_sentence(missing)
    assert text.startswith("This job needs models that are not on this machine: sdxl-base (6.5 GB) and svd-xt")
    assert "`python -m backend models download sdxl-base svd-xt`" in text and "Download button" in text
    assert "svd-xt is gated: accept its licence at https://huggingface.co/stabilityai/" in text
    assert text.endswith("RIFE has no public download.") and "\n" not in text and len(text) < 450


# --- admission ----------------------------------------------------------------------------------------

def test_a_job_whose_models_are_missing_is_refused_at_submit_in_one_sentence(tmp_path):
    spec = JobSpec(prompt="a red fox", planner="llm", finish=FinishOptions(upscale="model"))
    with pytest.raises(SpecError) as caught:
        admit(spec, tmp_path, hardware=GPU_24)
    message = str(caught.value)
    assert caught.value.field == "preset" and "\n" not in message
    for key in ("sdxl-base", "ltx-2b", "realesrgan-x4plus", "qwen2.5-1.5b-instruct"):
        assert key in message
    assert "models download sdxl-base ltx-2b realesrgan-x4plus qwen2.5-1.5b-instruct`" in message
    for key in ("sdxl-base", "ltx-2b", "realesrgan-x4plus", "qwen2.5-1.5b-instruct"):
        fake_download(tmp_path, key)
    assert admit(spec, tmp_path, hardware=GPU_24).prompt == "a red fox"


def test_the_tiny_set_is_admitted_without_looking_at_the_machine(tmp_path, monkeypatch):
    import backend.memory

    monkeypatch.setattr(backend.memory, "detect_hardware", lambda *a, **k: pytest.fail("no probe for tiny jobs"))
    assert admit(JobSpec(prompt="x", model_set="tiny", planner="llm"), tmp_path).model_set == "tiny"


def test_the_fleet_driver_does_not_require_the_models_on_its_own_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "none-here"))
    assert admit(JobSpec(prompt="x")).model_set == "default"  # its workers may hold them
    with pytest.raises(SpecError, match="IP-Adapter SDXL .* is not downloaded"):  # as before: checked here too
        admit(JobSpec(prompt="x", consistency="ip-adapter"))
