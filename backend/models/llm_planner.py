"""The LLM shot planner: a small, openly licensed instruct model writes the storyboard as JSON.

The model is asked for JSON matching ``backend.prompting.llm_schema.PLAN_SCHEMA`` (the reply is
pre-filled with "{" so it starts as JSON), decoded greedily with a bounded number of new tokens, and
the answer is validated; an answer that fails a check becomes the rule-based plan with ``fallback``
saying why. The model is loaded for one plan and freed right after: planning happens once per job,
before the GPU is needed for images and video.

    python -m backend models download qwen2.5-1.5b-instruct
"""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from backend.errors import ModelNotAvailable
from backend.models.registry import ModelRef
from backend.prompting import PlanRejected, ShotPlan, parse_llm_plan, plan_shot, planner_messages
from backend.prompting.llm_schema import fallback_sentence

log = logging.getLogger(__name__)

GIB = 1024**3
_NOTE = ("writes the storyboard (keyframe and motion prompts) when the planner is 'llm'",)
PLANNER_MODELS: dict[str, ModelRef] = {
    ref.key: ref
    for ref in (
        # Apache-2.0. The commit public projects pin as this repo's main (docs/MODELS.md); not re-checked here.
        ModelRef("qwen2.5-1.5b-instruct", "Qwen2ForCausalLM", "Qwen/Qwen2.5-1.5B-Instruct",
                 revision="989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
                 label="Qwen2.5 1.5B Instruct (storyboard planner)", licence="Apache-2.0", size_gb=2.9,
                 allow_patterns=("*.json", "*.safetensors", "merges.txt", "vocab.json", "LICENSE"), notes=_NOTE),
        ModelRef("tiny-planner-llm", "Qwen2ForCausalLM", tiny_name="planner-llm", licence="test model",
                 label="tiny planner LLM (test model: its output is garbage)", notes=("test model set",)),
    )
}
PLANNER_SETS: dict[str, str] = {"default": "qwen2.5-1.5b-instruct", "tiny": "tiny-planner-llm"}
TINY_NEW_TOKENS = 24  # enough to show the reply is garbage, few enough to take a moment on a CPU
BASE_NEW_TOKENS, NEW_TOKENS_PER_KEYFRAME, MAX_NEW_TOKENS = 256, 160, 3072
GPU_HEADROOM_GB = 1.5  # the KV cache and activations of a few thousand tokens, beyond the weights


def planner_model_for(model_set: str) -> ModelRef:
    try:
        return PLANNER_MODELS[PLANNER_SETS[model_set]]
    except KeyError:
        raise ValueError(f"No planner LLM in model set '{model_set}'; known sets: {', '.join(PLANNER_SETS)}.") \
            from None


def download_command(ref: ModelRef) -> str:
    return f"python -m backend models download {ref.key}"


def model_folder(ref: ModelRef, models_root: Path) -> Path:
    """The folder to load ``ref`` from: the tiny twin is built on first use; real weights must be downloaded."""
    if ref.is_tiny:
        from backend.models.tiny_llm import ensure_tiny_llm

        return ensure_tiny_llm(Path(models_root))
    folder = Path(models_root) / ref.key
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file() \
            and any(folder.glob("*.safetensors")):
        return folder
    raise ModelNotAvailable(f"The planner LLM {ref.label} is not downloaded: run `{download_command(ref)}` "
                            f"(about {ref.size_gb:.1f} GB into {folder}), or use the rule-based planner.")


def max_new_tokens(ref: ModelRef, keyframes: int) -> int:
    if ref.is_tiny:
        return TINY_NEW_TOKENS
    return min(MAX_NEW_TOKENS, BASE_NEW_TOKENS + NEW_TOKENS_PER_KEYFRAME * keyframes)


def plan_shot_with_llm(prompt: str, *, keyframes: int, duration: float, negative_prompt: str = "",
                       enhanced_override: str | None = None, model_set: str = "default",
                       models_root: Path) -> ShotPlan:
    """The LLM's storyboard, validated; the rule-based one (``fallback`` says why) when the answer fails."""
    rules = plan_shot(prompt, keyframes=keyframes, duration=duration, negative_prompt=negative_prompt,
                      enhanced_override=enhanced_override)  # checks the inputs, and is the fallback
    ref = planner_model_for(model_set)
    folder = model_folder(ref, models_root)
    messages = planner_messages(prompt, keyframes=keyframes, duration=duration, negative_prompt=negative_prompt)
    try:
        reply = generate_reply(folder, messages, max_new_tokens(ref, keyframes), size_gb=ref.size_gb)
    except MemoryError as exc:
        log.warning("the planner LLM ran out of memory: %s", exc)
        return replace(rules, fallback=fallback_sentence("the planner LLM ran out of memory"))
    try:
        return parse_llm_plan(reply, prompt=prompt, keyframes=keyframes, duration=duration,
                              planner=f"llm:{ref.key}", negative_prompt=negative_prompt,
                              enhanced_override=enhanced_override)
    except PlanRejected as exc:
        log.info("the planner LLM's answer was rejected (%s); it began %r", exc.reason, reply[:200])
        return replace(rules, fallback=fallback_sentence(exc.reason))


def _device(size_gb: float) -> tuple[str, Any]:
    """CUDA in bf16 when the GPU has room for the model, else the CPU in fp32 (slow, and said so)."""
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        if free >= (size_gb + GPU_HEADROOM_GB) * GIB:
            return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        log.warning("only %.1f GB of GPU memory is free; the planner LLM runs on the CPU", free / GIB)
    log.info("the planner LLM runs on the CPU in fp32: slow (minutes for a 1.5B model)")
    return "cpu", torch.float32


def generate_reply(folder: Path, messages: list[dict], new_tokens: int, *, size_gb: float = 0.0) -> str:
    """The model's greedy answer to ``messages``, pre-filled with "{" so that it starts as JSON."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    device, dtype = _device(size_gb)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True).to(device).eval()
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "{"
        inputs = tokenizer(text, return_tensors="pt").to(device)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        settings = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=end,
                                    pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end)
        try:
            with torch.inference_mode():
                output = model.generate(**inputs, generation_config=settings)
        except torch.OutOfMemoryError as exc:
            raise MemoryError(str(exc)) from exc  # the caller falls back without knowing torch
        return "{" + tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        del model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
