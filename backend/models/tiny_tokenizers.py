"""Offline tokenizers for the tiny random-weight set (test models — output is noise).

The hub cannot be reached where the tiny set is built, so the tokenizers are made here from a
handful of sentences: a byte-level CLIP BPE (vocab.json + merges.txt) and a small sentencepiece
unigram model for T5/UMT5. Both are deterministic, so a rebuild gives the same token ids.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Plain video-prompt sentences: enough variety that the learned merges and pieces look like
# real sub-words, small enough that training takes milliseconds.
CORPUS: tuple[str, ...] = (
    "ocean waves crashing on a beach at golden hour",
    "a red fox running through a snowy forest at dawn",
    "a city street at night with neon lights and rain",
    "a cat sleeping on a sunny windowsill, soft light",
    "mountains covered in fog, cinematic aerial shot",
    "a cup of coffee steaming on a wooden table",
    "children playing football in a park in the evening",
    "a spaceship flying over a desert planet with two suns",
    "slow motion water drops falling into a blue pool",
    "an old man reading a newspaper in a quiet cafe",
    "time lapse of clouds moving over a green valley",
    "a dog jumping into a lake, splashing water everywhere",
    "a hot air balloon drifting above vineyards in the morning",
    "a jazz band playing music in a smoky bar, warm tones",
    "a butterfly landing on a yellow flower in the garden",
    "a train crossing a bridge over a river during a storm",
    "a lighthouse on a rocky cliff with waves below, overcast sky",
    "an astronaut walking on the moon, earth rising in the distance",
)

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
CLIP_WORD_END = "</w>"
CLIP_NUM_MERGES = 300

SPM_VOCAB_SIZE = 120


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-to-printable-character table of byte-level BPE (GPT-2/CLIP convention)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def _word_symbols(word: str, byte_table: dict[int, str]) -> tuple[str, ...]:
    chars = [byte_table[b] for b in word.encode("utf-8")]
    chars[-1] += CLIP_WORD_END  # CLIP marks the last symbol of each word
    return tuple(chars)


def _merge_word(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def learn_bpe_merges(sentences: tuple[str, ...], num_merges: int) -> list[tuple[str, str]]:
    """Classic BPE training; ties are broken by the pair itself so the result is deterministic."""
    byte_table = _bytes_to_unicode()
    words = Counter(
        _word_symbols(word, byte_table) for sentence in sentences for word in sentence.lower().replace(",", " ").split()
    )
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break  # every word is a single symbol: nothing left to merge
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = Counter({_merge_word(symbols, best): count for symbols, count in words.items()})
    return merges


def write_clip_vocab(folder: Path) -> Path:
    """Write vocab.json + merges.txt for a CLIP BPE tokenizer into ``folder``."""
    byte_symbols = list(_bytes_to_unicode().values())
    merges = learn_bpe_merges(CORPUS, CLIP_NUM_MERGES)
    tokens = byte_symbols + [s + CLIP_WORD_END for s in byte_symbols]
    tokens += [a + b for a, b in merges]
    tokens += [CLIP_BOS, CLIP_EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    logger.debug("CLIP vocab: %d tokens, %d merges", len(vocab), len(merges))
    return folder


def build_clip_tokenizer(workdir: Path) -> Any:
    """A CLIPTokenizer made from vocab files written under ``workdir``."""
    from transformers import CLIPTokenizer

    folder = write_clip_vocab(workdir / "clip_vocab")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def train_sentencepiece(workdir: Path) -> Path:
    """Train a tiny unigram model; returns the path of the .model file (inside ``workdir``)."""
    import sentencepiece as spm

    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "spiece"
    spm.set_random_generator_seed(0)  # with one thread, the EM training is then reproducible
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=str(prefix),
        model_type="unigram",
        vocab_size=SPM_VOCAB_SIZE,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        num_threads=1,
        hard_vocab_limit=False,  # a tiny corpus may support slightly fewer pieces
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def build_t5_tokenizer(workdir: Path) -> Any:
    """A T5Tokenizer (used for both T5 and UMT5 encoders) from a freshly trained sentencepiece model."""
    from transformers import T5Tokenizer

    model_file = train_sentencepiece(workdir / "spm")
    # 512 is the longest sequence the studio asks for (Wan); the default would be "unlimited".
    return T5Tokenizer.from_pretrained(str(model_file.parent), extra_ids=0, model_max_length=512)
