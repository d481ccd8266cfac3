"""Negations: "not at night", "without people", "no text", "but not a dog".

A diffusion model cannot read "not": every word in the positive prompt pulls the picture towards it,
so "not at night" in the positive prompt asks for night. The negated phrase is cut out of the text
that everything else reads (the analysis, the enhanced prompt, the keyframe prompts) and its words go
to the negative prompt instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.prompting.vocabulary import CONJUNCTIONS, DETERMINERS, PREPOSITIONS

_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")
# Single-word triggers, and two-word ones read as one ("do not show", "free of").
_TRIGGERS = frozenset({"not", "no", "without", "never", "avoid", "avoiding", "nor", "neither", "minus", "nobody"})
_PAIRED = {("don't", "show"), ("don't", "include"), ("do", "not"), ("free", "of"), ("devoid", "of")}
# A conjunction right before a trigger belongs to the negation ("but not a dog", "with no people").
_LEADS = frozenset({"but", "and", "with", "yet", "or"})
_LISTS = frozenset({"no", "without", "neither", "nor", "avoid", "avoiding", "free", "devoid", "minus"})
MAX_WORDS = 5
# Words that finish a negation rather than start a new phrase: "no one around", "no cars visible".
_TRAILING = frozenset({"around", "about", "nearby", "anywhere", "present", "visible", "whatsoever"})


@dataclass(frozen=True)
class Negations:
    clean: str  # the prompt with every negated phrase cut out
    terms: tuple[str, ...]  # what must not be shown: "night", "people", "text"
    phrases: tuple[str, ...]  # the user's words: "not at night"


@dataclass(frozen=True)
class _Tok:
    text: str
    lower: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    return [_Tok(m.group(), m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _is_word(tok: _Tok) -> bool:
    return tok.lower[0].isalnum()


def _trigger_length(toks: list[_Tok], i: int) -> int:
    """How many tokens the negation trigger at ``i`` spans (0: none there)."""
    pair = (toks[i].lower, toks[i + 1].lower) if i + 1 < len(toks) else None
    if pair in _PAIRED:
        if pair == ("do", "not") and i + 2 < len(toks) and toks[i + 2].lower in ("show", "include", "add"):
            return 3
        return 2
    return 1 if toks[i].lower in _TRIGGERS else 0


def _read_terms(toks: list[_Tok], j: int, trigger: str) -> tuple[list[str], int]:
    """The negated terms from token ``j`` on, and the index after the last token they use."""
    terms: list[str] = []
    words: list[str] = []
    end = j
    if trigger == "not" and j < len(toks) and toks[j].lower in PREPOSITIONS:
        j += 1  # "not at night": the place or time is what is negated
    if trigger == "nobody":
        return ["people"], j
    if trigger == "no" and j < len(toks) and toks[j].lower in ("one", "body"):
        return ["people"], j + 1  # "no one around"
    while j < len(toks) and _is_word(toks[j]) and len(words) < MAX_WORDS:
        word = toks[j].lower
        if word in ("and", "or", "nor") and words and trigger in _LISTS and j + 1 < len(toks) \
                and _is_word(toks[j + 1]) and toks[j + 1].lower not in PREPOSITIONS | _TRIGGERS:
            terms.append(" ".join(words))
            words = []
        elif word in CONJUNCTIONS or word in PREPOSITIONS:
            break
        elif not (word in DETERMINERS and not words):
            words.append(word)
        j += 1
        end = j
    if words:
        terms.append(" ".join(words))
    return terms, end


def find_negations(text: str) -> Negations:
    """Cut the negated phrases out of ``text``; their words become negative terms."""
    toks = _tokens(text)
    spans: list[tuple[int, int]] = []
    terms: list[str] = []
    phrases: list[str] = []
    i = 0
    while i < len(toks):
        length = _trigger_length(toks, i)
        if not length:
            i += 1
            continue
        # A multi-word trigger ("don't show", "free of") negates a list, as "no" does.
        found, after = _read_terms(toks, i + length, toks[i].lower if length == 1 else "no")
        if not found:
            i += length
            continue
        while after < len(toks) and toks[after].lower in _TRAILING:
            after += 1
        start = toks[i - 1].start if i > 0 and toks[i - 1].lower in _LEADS else toks[i].start
        end = toks[after - 1].end
        # "not at night but at noon": the "but" that follows only contrasted with the negated phrase.
        if after < len(toks) and toks[after].lower in ("but", "yet") and toks[i].lower in ("not", "never"):
            end = toks[after].end
        spans.append((start, end))
        phrases.append(text[toks[i].start:toks[after - 1].end])
        terms.extend(t for t in found if t not in terms)
        i = after
    return Negations(_cut(text, spans), tuple(terms), tuple(phrases))


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in reversed(spans):
        text = text[:start] + " " + text[end:]
    text = re.sub(r"\s+([,;.!?])", r"\1", " ".join(text.split()))
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text)  # "a, , b" → "a, b"
    return text.strip(" ,;")


def mentions(text: str, term: str) -> bool:
    """True if ``text`` says ``term`` (or its plural) as whole words."""
    return re.search(rf"\b{re.escape(term)}(?:s|es)?\b", text, re.IGNORECASE) is not None


def drop_negated(parts: list[str], terms: tuple[str, ...]) -> list[str]:
    """The prompt parts that do not mention a negated term."""
    return [part for part in parts if not any(mentions(part, term) for term in terms)]
