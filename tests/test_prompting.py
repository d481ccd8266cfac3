"""Prompt analysis is explainable, the enhancement depends on the style, negations stay negative, and the
storyboard plan tells how the action progresses from keyframe to keyframe."""

import re

import pytest

from backend.errors import SpecError
from backend.prompting import analyze_prompt, keyframe_prompt, plan_shot
from backend.prompting.storyboard import CLIP_TOKENS, clip_tokens, fit_clip

pytestmark = pytest.mark.unit

DRAGON = "a dragon made of smoke uncoiling above a burning castle, oil painting, not at night"


def positive_texts(plan) -> list[str]:
    return [plan.analysis.enhanced_prompt, *(k.prompt for k in plan.keyframes), *plan.segment_prompts]


def test_the_reference_prompt_is_analysed_into_its_parts():
    a = analyze_prompt("ocean waves crashing on a beach at golden hour")
    assert (a.subject, a.setting, a.action, a.lighting) == ("ocean waves", "beach", "crashing", "golden hour")
    assert a.style == "photoreal"
    assert a.enhanced_prompt.startswith("ocean waves crashing on a beach at golden hour, ")
    assert "golden hour light" in a.enhanced_prompt
    assert a.evidence["action"] == "crashing"
    assert "blurry" in a.negative_prompt
    assert a.camera == "static"  # the waves move; the camera need not


def test_enhancement_is_style_aware_not_one_fixed_suffix():
    anime = analyze_prompt("a girl running through a field, anime")
    noir = analyze_prompt("a detective walking in the rain, film noir")
    assert anime.style == "anime" and "cel shading" in anime.enhanced_prompt
    assert noir.style == "noir" and "high contrast" in noir.enhanced_prompt
    assert anime.enhanced_prompt.split(", ", 1)[1] != noir.enhanced_prompt.split(", ", 1)[1]
    assert "photorealistic" in anime.negative_prompt  # anime avoids photorealism


def test_user_negative_prompt_comes_first():
    a = analyze_prompt("a cat", "dogs")
    assert a.negative_prompt.startswith("dogs, ")


def test_framing_words_are_not_the_subject():
    assert analyze_prompt("A cinematic shot of a red fox in the snow").subject == "red fox"


def test_a_users_own_enhanced_prompt_is_used_verbatim():
    a = analyze_prompt("a cat", enhanced_override="  a cat, oil painting,   warm light ")
    assert a.enhanced_prompt == "a cat, oil painting, warm light"
    assert a.prompt == "a cat" and a.evidence["enhanced_prompt"] == "written by the user"


# --- the three failures ------------------------------------------------------------------------

def test_a_subject_keeps_its_modifiers_whole():
    a = analyze_prompt("a dragon made of smoke uncoiling above a burning castle")
    assert (a.subject, a.action, a.setting) == ("dragon made of smoke", "uncoiling", "burning castle")


def test_a_present_tense_action_is_found():
    a = analyze_prompt("two astronauts shake hands")
    assert (a.subject, a.action) == ("two astronauts", "shaking hands")
    assert a.evidence["action"] == "shake hands"


def test_a_negated_time_of_day_goes_to_the_negative_prompt_only():
    a = analyze_prompt("a city street not at night but at noon")
    assert a.lighting == "daylight"
    assert "night" not in a.enhanced_prompt and "moody" not in a.enhanced_prompt
    assert a.negative_prompt.startswith("night, ")
    assert "at noon" in a.enhanced_prompt
    assert a.evidence["negations"] == "not at night"


# --- more of the rule-based planner --------------------------------------------------------------------

@pytest.mark.parametrize("prompt, term, kept", [
    ("a quiet beach without people, sunset", "people", "a quiet beach, sunset"),
    ("a neon sign on a brick wall, no text", "text", "a neon sign on a brick wall"),
    ("a cat on a sofa, but not a dog", "dog", "a cat on a sofa"),
    ("a forest with no people and no cars", "cars", "a forest"),
    ("a street with no one around, dawn", "people", "a street, dawn"),
])
def test_negations_never_reach_the_positive_prompts(prompt, term, kept):
    plan = plan_shot(prompt, keyframes=3, duration=4.0)
    assert plan.analysis.enhanced_prompt.startswith(kept)
    assert term in plan.analysis.negative_prompt.split(", ")
    for text in positive_texts(plan):
        assert not re.search(rf"\b{term}s?\b", text), text


@pytest.mark.parametrize("prompt, subject, action", [
    ("a red vintage car driving along a coastal road at sunset", "red vintage car", "driving"),
    ("autumn leaves fall in a quiet park", "autumn leaves", "falling"),
    ("a lake frozen in time under a pale sky", "lake", "frozen"),
    ("a man in a red coat walks down a snowy street", "man in a red coat", "walking"),
    ("a girl, dancing in the rain", "girl", "dancing"),
    ("in a dark forest, a wolf howls at the moon", "wolf", "howling"),
    ("a cup of coffee steaming on a wooden table", "cup of coffee", "steaming"),
    ("a flower slowly opening, macro", "flower", "slowly opening"),
    ("a castle covered in snow on a hill", "castle covered in snow", "still"),
    ("an old man reading a newspaper in a quiet cafe", "old man", "reading a newspaper"),
])
def test_subjects_and_actions_in_every_tense(prompt, subject, action):
    a = analyze_prompt(prompt)
    assert (a.subject, a.action) == (subject, action)


@pytest.mark.parametrize("prompt, setting", [
    ("a red vintage car driving along a coastal road at sunset", "coastal road"),
    ("a hummingbird hovering near a waterfall", "waterfall"),
    ("a fox sleeping in a bamboo forest", "bamboo forest"),
    ("astronauts floating in outer space", "outer space"),
])
def test_a_larger_vocabulary_of_places(prompt, setting):
    assert analyze_prompt(prompt).setting == setting


@pytest.mark.parametrize("prompt, camera", [
    ("aerial view of a winding river through a canyon", "aerial"),
    ("tracking shot of a cyclist racing down a mountain road", "tracking"),
    ("extreme close-up of an eye blinking", "close-up"),
    ("the camera slowly pushes in on a sleeping cat", "slow push in"),
    ("a runner sprinting along a beach", "static"),  # moving subject, no camera said: a locked camera
    ("a lighthouse on a cliff", "slow push in"),  # a still scene gets a slow move
])
def test_the_camera_comes_from_the_prompt_or_a_sensible_default(prompt, camera):
    assert analyze_prompt(prompt).camera == camera


def test_the_camera_words_are_not_the_subject():
    a = analyze_prompt("the camera slowly pushes in on an old man reading a newspaper")
    assert (a.subject, a.action) == ("old man", "reading a newspaper")


# --- the storyboard plan -------------------------------------------------------------------------------

def test_the_done_when_plan_progresses_through_the_action():
    plan = plan_shot(DRAGON, keyframes=4, duration=4.0)
    a = plan.analysis
    assert (a.subject, a.action, a.style) == ("dragon made of smoke", "uncoiling", "painting")
    assert a.lighting != "night" and "night" in a.negative_prompt.split(", ")
    assert [k.time for k in plan.keyframes] == [0.0, 1.333, 2.667, 4.0]
    prompts = [k.prompt for k in plan.keyframes]
    assert len(set(prompts)) == 4
    assert "beginning to uncoil" in prompts[0] and "fully uncoiled" in prompts[3]
    assert "partly uncoiled" in prompts[1] and "mostly uncoiled" in prompts[2]
    for prompt in prompts:  # the same subject, place and style in every keyframe, the distinct part first
        assert prompt.startswith("dragon made of smoke ") and "above a burning castle" in prompt
        assert "oil painting" in prompt and "brush strokes" in prompt
    assert all(not re.search(r"\bnight\b", text) for text in positive_texts(plan))
    assert plan.planner == "rules" and plan.fallback is None
    assert len(plan.segment_prompts) == 3


def test_one_keyframe_is_at_zero_with_one_segment_for_the_whole_shot():
    plan = plan_shot("a balloon rising over mountains", keyframes=1, duration=6.0)
    assert [k.time for k in plan.keyframes] == [0.0]
    assert len(plan.segment_prompts) == 1 and "from the start to the end" in plan.segment_prompts[0]


def test_an_action_that_goes_on_reads_as_further_along_not_finished():
    prompts = [k.prompt for k in plan_shot("a woman walking through a market", keyframes=3, duration=4).keyframes]
    assert prompts[0].startswith("woman starting to walk")
    assert prompts[2].startswith("woman walking, far along the way")


def test_a_still_scene_moves_by_its_camera():
    prompts = [k.prompt for k in plan_shot("a lighthouse on a cliff", keyframes=3, duration=4).keyframes]
    assert ["wide shot" in prompts[0], "medium shot" in prompts[1], "close shot" in prompts[2]] == [True] * 3


def test_every_keyframe_prompt_fits_clips_window():
    long = ("a majestic ancient silver dragon with iridescent scales and glowing amber eyes made of swirling smoke "
            "slowly uncoiling above a burning medieval castle surrounded by a dark misty forest, oil painting, "
            "dramatic lighting, intricate detail, masterpiece, volumetric fog, embers in the air, epic composition")
    plan = plan_shot(long, keyframes=5, duration=8.0)
    for frame in plan.keyframes:
        assert clip_tokens(frame.prompt) <= CLIP_TOKENS
        assert "uncoil" in frame.prompt  # the distinct words come first, so they survive the cut


def test_fit_clip_keeps_parts_in_order_until_the_window_is_full():
    assert fit_clip(["a", "b", "", "c"]) == "a, b, c"
    fitted = fit_clip(["first part"] + [f"filler number {i}" for i in range(60)])
    assert fitted.startswith("first part, filler number 0") and clip_tokens(fitted) <= CLIP_TOKENS


def test_a_users_enhanced_prompt_is_keyframe_zero_as_written():
    override = "a smoke dragon over a castle, my own words"
    plan = plan_shot(DRAGON, keyframes=3, duration=4.0, enhanced_override=override)
    assert plan.keyframes[0].prompt == override == plan.analysis.enhanced_prompt
    assert plan.keyframes[1].prompt.startswith("dragon made of smoke mid-uncoil") and override in plan.keyframes[1].prompt


def test_the_plan_serialises_to_plain_json_types():
    document = plan_shot("two astronauts shake hands", keyframes=2, duration=3.0).to_dict()
    assert document["planner"] == "rules" and document["fallback"] is None
    assert document["analysis"]["camera"] == "static"
    assert document["keyframes"] == [{"time": 0.0, "prompt": document["keyframes"][0]["prompt"]},
                                     {"time": 3.0, "prompt": document["keyframes"][1]["prompt"]}]
    assert document["keyframes"][1]["prompt"].startswith("two astronauts having shaken hands")


@pytest.mark.parametrize("keyframes, duration", [(0, 4.0), (65, 4.0), (2, 0.0), (True, 4.0)])
def test_a_bad_shape_is_a_spec_error(keyframes, duration):
    with pytest.raises(SpecError):
        plan_shot("a cat", keyframes=keyframes, duration=duration)


def test_keyframe_prompt_still_serves_older_callers():
    a = analyze_prompt("a balloon rising over mountains")
    prompts = [keyframe_prompt(a, i, 3) for i in range(3)]
    assert prompts == [k.prompt for k in plan_shot(a.prompt, keyframes=3, duration=2.0).keyframes]
    assert prompts[0].startswith("balloon beginning to rise") and "over mountains" in prompts[1]


@pytest.mark.parametrize("prompt, subject, action, first_keyframe_starts", [
    ("a lighthouse on a cliff as a storm rolls in", "storm", "rolling in", "storm starting to roll in"),
    ("a man picks up a red umbrella", "man", "picking up a red umbrella", "man beginning to pick up a red umbrella"),
    ("a chef takes out a tray of bread from the oven", "chef", "taking out a tray of bread",
     "chef beginning to take out a tray of bread"),
    ("a girl runs down the street", "girl", "running", "girl starting to run, down the street"),
])
def test_phrasal_verbs_keep_their_particle_and_object(prompt, subject, action, first_keyframe_starts) -> None:
    plan = plan_shot(prompt, keyframes=3, duration=4.0)
    assert (plan.analysis.subject, plan.analysis.action) == (subject, action)
    assert plan.keyframes[0].prompt.startswith(first_keyframe_starts)


def test_the_planner_takes_as_many_keyframes_as_a_long_first_last_video_needs() -> None:
    """120 s of Wan (16 fps, 81 frames a call) needs 25 keyframes: more than a user may ask for (16)."""
    plan = plan_shot("a paper boat sailing down a river", keyframes=25, duration=120.0)
    assert len(plan.keyframes) == 25 and len(plan.segment_prompts) == 24
    assert plan.keyframes[-1].time == 120.0 and plan.keyframes[12].time == 60.0
