"""The tiny random-weight planner LLM: a two-layer Qwen2 causal LM with a byte-level BPE tokenizer
trained here on a few sentences. A test model — its output is garbage, which is the point: it proves
the planner's plumbing (chat template, ``from_pretrained``, greedy generation, decoding) and that the
validation catches a bad answer and falls back.

Built on first use into ``<models_root>/tiny/planner-llm`` like the rest of the tiny set: a staging
folder, a ``.complete`` marker written last, a rename into place, all under the tiny set's build lock.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

TINY_NAME = "planner-llm"
FORMAT_VERSION = "1"
MARKER_NAME = ".complete"
VOCAB_SIZE = 600
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen2's shape at toy size: grouped-query attention (4 heads sharing 2 key/value heads), tied embeddings.
TINY_CONFIG = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": True}
# The ChatML layout Qwen2.5 uses: <|im_start|>role, the text, <|im_end|>.
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# What the BPE merges are learned from: storyboard words and the JSON the planner asks for.
_EXTRA_CORPUS = (
    '{"subject": "", "setting": "", "action": "", "style": "", "lighting": "", "camera": "static"}',
    '"enhanced_prompt": "", "negative_prompt": "", "keyframes": [{"time": 0, "prompt": ""}], "segment_prompts": []',
    "You plan storyboards for a text-to-video studio. Answer with one JSON object and nothing else.",
    "beginning to uncoil, halfway through, fully uncoiled, the same subject, place and style in every keyframe",
)


def tiny_llm_dir(models_root: Path) -> Path:
    return Path(models_root) / "tiny" / TINY_NAME


def is_complete(folder: Path) -> bool:
    from backend.models.tiny import marked_complete

    return marked_complete(folder, FORMAT_VERSION)


def ensure_tiny_llm(models_root: Path) -> Path:
    """The tiny planner LLM's folder, built first if it is missing or from an older format."""
    from backend.models.tiny import build_once

    return build_once(tiny_llm_dir(models_root), FORMAT_VERSION, build_tiny_llm)


def build_tokenizer() -> object:
    """A byte-level BPE tokenizer (Qwen2's kind) trained offline, with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from backend.models.tiny_tokenizers import CORPUS

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(list(CORPUS) + list(_EXTRA_CORPUS), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        model_max_length=TINY_CONFIG["max_position_embeddings"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llm(folder: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=pad, eos_token_id=end, pad_token_id=pad,
                         **TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):  # seeding the weights must not change the caller's random state
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=end, pad_token_id=pad, do_sample=False)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    log.info("Built the tiny planner LLM in %s (test model: its output is garbage)", folder)
