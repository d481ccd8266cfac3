"""The LLM planner: its answer is validated (hand-written good and bad JSON here), a bad answer falls back
to the rule-based plan and says why, and the tiny random-weight LLM proves the plumbing end to end.

The tiny model's output is garbage by design: these tests show that garbage never becomes a storyboard.
"""

import json
import threading
from pathlib import Path

import pytest

from backend.errors import ModelNotAvailable
from backend.models import llm_planner
from backend.models.llm_planner import PLANNER_MODELS, plan_shot_with_llm, planner_model_for
from backend.models.tiny_llm import MARKER_NAME, ensure_tiny_llm
from backend.paths import runtime_paths
from backend.prompting import PlanRejected, parse_llm_plan, planner_messages
from backend.stages import analyze
from backend.stages.context import StageContext

pytestmark = pytest.mark.tiny  # the validator tests are pure and also marked unit

PROMPT = "a dragon made of smoke uncoiling above a burning castle, oil painting, not at night"


def good_plan(**changes) -> dict:
    plan = {
        "subject": "dragon made of smoke", "setting": "burning castle", "action": "uncoiling", "style": "oil painting",
        "lighting": "firelight", "camera": "slow push in",
        "enhanced_prompt": "a smoke dragon uncoiling above a burning castle, oil painting, firelight",
        "negative_prompt": "blurry",
        "keyframes": [{"time": 0, "prompt": "smoke dragon coiled above a burning castle, oil painting"},
                      {"time": 2.0, "prompt": "smoke dragon half uncoiled above a burning castle, oil painting"},
                      {"time": 4, "prompt": "smoke dragon fully uncoiled above a burning castle, oil painting"}],
        "segment_prompts": ["the dragon starts to uncoil", "the dragon stretches out fully"],
    }
    plan.update(changes)
    return plan


def parse(document, **kwargs):
    text = document if isinstance(document, str) else json.dumps(document)
    options = {"prompt": PROMPT, "keyframes": 3, "duration": 4.0, "planner": "llm:test"} | kwargs
    return parse_llm_plan(text, **options)


@pytest.mark.unit
def test_a_valid_answer_becomes_the_storyboard():
    plan = parse("Here is the plan:\n```json\n" + json.dumps(good_plan()) + "\n```")
    assert plan.planner == "llm:test" and plan.fallback is None
    assert [k.time for k in plan.keyframes] == [0.0, 2.0, 4.0]
    assert plan.keyframes[2].prompt.startswith("smoke dragon fully uncoiled")
    assert plan.analysis.camera == "slow push in" and plan.analysis.subject == "dragon made of smoke"
    # The user's negation is in the negative prompt even though the LLM left it out, then the LLM's words.
    assert plan.analysis.negative_prompt.startswith("night, blurry, low quality")
    assert len(plan.segment_prompts) == 2


@pytest.mark.unit
def test_the_users_enhanced_prompt_replaces_keyframe_zero():
    plan = parse(good_plan(), enhanced_override="my own  words")
    assert plan.keyframes[0].prompt == "my own words" == plan.analysis.enhanced_prompt


@pytest.mark.unit
def test_times_a_hair_off_the_ends_are_snapped_to_them():
    frames = good_plan()["keyframes"]
    frames[0]["time"], frames[2]["time"] = 0.01, 3.98
    assert [k.time for k in parse(good_plan(keyframes=frames)).keyframes] == [0.0, 2.0, 4.0]


def _with(**changes):
    return good_plan(**changes)


def _frames(*times, prompt="a dragon"):
    return [{"time": t, "prompt": prompt} for t in times]


@pytest.mark.unit
@pytest.mark.parametrize("reply, reason", [
    ("{{{{ garbage", "the LLM's plan was not valid JSON"),
    ("no json here", "the LLM's plan was not valid JSON"),
    ("[1, 2, 3]", "the LLM's plan was not a JSON object"),
    ({k: v for k, v in good_plan().items() if k != "subject"}, "the LLM's plan had no 'subject'"),
    (_with(setting=7), "the LLM's plan gave 'setting' as int instead of text"),
    (_with(action="   "), "the LLM's plan left 'action' empty"),
    (_with(style="x" * 500), "the LLM's plan made 'style' longer than 120 characters"),
    (_with(keyframes="three"), "the LLM's plan had no list of keyframes"),
    (_with(keyframes=_frames(0, 4)), "the LLM's plan had 2 keyframes instead of 3"),
    (_with(keyframes=[1, 2, 3]), "the LLM's keyframe 1 was not an object with a time and a prompt"),
    (_with(keyframes=_frames(0, "2", 4)), "the LLM's keyframe 2 had no time in seconds"),
    (_with(keyframes=_frames(0, 9, 4)), "the LLM's keyframe 2 was at 9 s, outside the 4 s video"),
    (_with(keyframes=_frames(0, 3, 2)), "the LLM's keyframe times did not increase"),
    (_with(keyframes=_frames(0, 1, 2)), "the LLM's keyframe times did not run from 0 to 4 s"),
    (_with(keyframes=_frames(0, 2, 4, prompt="")), "the LLM's plan left keyframe 1's prompt empty"),
    (_with(segment_prompts=["one"]), "the LLM's plan had 1 segment prompt instead of 2"),
    (_with(segment_prompts=["one", None]), "the LLM's plan gave segment 2's prompt as NoneType instead of text"),
    (_with(lighting="moody night light"), "the LLM's plan put 'night', which the prompt negates, into a positive"),
    (_with(keyframes=_frames(0, 2, 4, prompt="dragon at night")), "the LLM's plan put 'night', which the prompt"),
    ("{" + " " * 30_000 + "}", "the LLM's plan was too long"),
])
def test_an_invalid_answer_is_rejected_with_the_reason(reply, reason):
    with pytest.raises(PlanRejected) as info:
        parse(reply)
    assert info.value.reason.startswith(reason)


@pytest.mark.unit
def test_one_keyframe_must_be_at_zero():
    one = good_plan(keyframes=_frames(0), segment_prompts=["the whole motion"])
    assert [k.time for k in parse(one, keyframes=1).keyframes] == [0.0]
    with pytest.raises(PlanRejected):
        parse(good_plan(keyframes=_frames(4), segment_prompts=["x"]), keyframes=1)


@pytest.mark.unit
def test_the_question_states_the_schema_and_the_counts():
    system, user = planner_messages(PROMPT, keyframes=5, duration=6.0, negative_prompt="rain")
    assert '"segment_prompts"' in system["content"] and "exactly 5 entries" in system["content"]
    assert "exactly 4 entries" in system["content"] and "the last 6" in system["content"]
    assert user["content"].endswith("Keyframes: 5\nDuration: 6 seconds\nAlso avoid: rain")


@pytest.mark.unit
def test_a_real_planner_that_is_not_downloaded_names_the_download_command(tmp_path: Path):
    with pytest.raises(ModelNotAvailable) as info:
        plan_shot_with_llm(PROMPT, keyframes=3, duration=4.0, models_root=tmp_path)
    assert "python -m backend models download qwen2.5-1.5b-instruct" in str(info.value)
    ref = planner_model_for("default")
    assert (ref.repo_id, ref.licence) == ("Qwen/Qwen2.5-1.5B-Instruct", "Apache-2.0")


@pytest.mark.unit
def test_a_valid_llm_answer_is_used_and_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(llm_planner, "model_folder", lambda ref, root: tmp_path)
    monkeypatch.setattr(llm_planner, "generate_reply", lambda *a, **k: json.dumps(good_plan()))
    plan = plan_shot_with_llm(PROMPT, keyframes=3, duration=4.0, models_root=tmp_path)
    assert plan.planner == "llm:qwen2.5-1.5b-instruct" and plan.fallback is None


@pytest.mark.unit
def test_running_out_of_memory_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def no_memory(*args, **kwargs):
        raise MemoryError("CUDA out of memory")

    monkeypatch.setattr(llm_planner, "model_folder", lambda ref, root: tmp_path)
    monkeypatch.setattr(llm_planner, "generate_reply", no_memory)
    plan = plan_shot_with_llm(PROMPT, keyframes=2, duration=4.0, models_root=tmp_path)
    assert plan.planner == "rules" and plan.fallback.startswith("the planner LLM ran out of memory")


# --- the tiny random-weight LLM ------------------------------------------------------------------------

def test_the_tiny_llm_is_built_once_with_a_completeness_marker(tmp_path: Path):
    folder = ensure_tiny_llm(tmp_path)
    assert folder == tmp_path / "tiny" / "planner-llm" and (folder / MARKER_NAME).is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["num_hidden_layers"] == 2
    assert (folder / "tokenizer.json").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_llm(tmp_path) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_tiny_llms_garbage_is_caught_and_the_rules_write_the_storyboard():
    plan = plan_shot_with_llm(PROMPT, keyframes=4, duration=4.0, model_set="tiny",
                              models_root=runtime_paths().models)
    assert plan.planner == "rules"
    assert plan.fallback == "the LLM's plan was not valid JSON; the rule-based planner wrote this storyboard"
    assert len(plan.keyframes) == 4 and plan.analysis.subject == "dragon made of smoke"
    assert PLANNER_MODELS["tiny-planner-llm"].is_tiny


def _context(lines: list[str]) -> StageContext:
    return StageContext("job", "analyze", None, Path("."), threading.Event(), lambda *a: None,  # type: ignore[arg-type]
                        notes=lines.append)


def test_the_analyze_stage_records_the_planner_and_logs_the_fallback():
    lines: list[str] = []
    inputs = analyze.AnalyzeInputs(PROMPT, keyframes=3, duration=4.0, planner="llm", model_set="tiny")
    result = analyze.run(_context(lines), inputs)
    assert result.record.planner == "rules"
    assert result.record.planner_fallback.startswith("the LLM's plan was not valid JSON")
    assert result.record.enhanced_prompt == result.analysis.enhanced_prompt == result.plan.analysis.enhanced_prompt
    assert lines == ["analyze: The LLM's plan was not valid JSON; the rule-based planner wrote this storyboard."]


@pytest.mark.unit
def test_the_analyze_stage_with_the_rules_needs_no_model():
    lines: list[str] = []
    result = analyze.run(_context(lines), analyze.AnalyzeInputs(PROMPT, keyframes=2, duration=3.0))
    assert (result.record.planner, result.record.planner_fallback, lines) == ("rules", None, [])
    assert [k.time for k in result.plan.keyframes] == [0.0, 3.0]
