"""Prompt analysis is explainable and the enhancement depends on the style."""

from backend.prompting import analyze_prompt, keyframe_prompt


def test_the_reference_prompt_is_analysed_into_its_parts():
    a = analyze_prompt("ocean waves crashing on a beach at golden hour")
    assert (a.subject, a.setting, a.action, a.lighting) == ("ocean waves", "beach", "crashing", "golden hour")
    assert a.style == "photoreal"
    assert a.enhanced_prompt.startswith("ocean waves crashing on a beach at golden hour, ")
    assert "golden hour light" in a.enhanced_prompt
    assert a.evidence["action"] == "crashing"
    assert "blurry" in a.negative_prompt


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


def test_keyframe_prompts_move_forward_in_time():
    a = analyze_prompt("a balloon rising over mountains")
    prompts = [keyframe_prompt(a, i, 3) for i in range(3)]
    assert prompts[0] == a.enhanced_prompt
    assert "later" in prompts[1] and "final moment" in prompts[2]
    assert "rising continues" in prompts[2]
    # The timing comes right after the user's words, where CLIP's 77-token window keeps it.
    assert prompts[1].startswith("a balloon rising over mountains, later in the same scene, rising continues")


def test_a_users_own_enhanced_prompt_is_used_verbatim():
    a = analyze_prompt("a cat", enhanced_override="  a cat, oil painting,   warm light ")
    assert a.enhanced_prompt == "a cat, oil painting, warm light"
    assert a.prompt == "a cat" and a.evidence["enhanced_prompt"] == "written by the user"
