"""One prompt, read once: negations cut out, then style, lighting, camera, the main clause's subject and
verb, the place, and what is left of the prompt (the context each keyframe repeats).

Every field records the words that decided it (``evidence``), so a wrong label can be explained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backend.prompting.clauses import (
    Token,
    VerbPhrase,
    find_verb,
    framing_end,
    is_adverb,
    split_clauses,
    subject_tokens,
    tokenize,
)
from backend.prompting.negations import Negations, find_negations
from backend.prompting.vocabulary import (
    ARTICLES,
    CAMERA,
    CONJUNCTIONS,
    DETERMINERS,
    LIGHTING,
    PREPOSITIONS,
    SETTINGS,
    STYLES,
)

# Words that only describe the look ("oil painting", "4k"): a clause made of them has no subject.
_QUALITY = frozenset({"4k", "8k", "hd", "uhd", "highly", "detailed", "detail", "high", "quality", "masterpiece",
                      "photorealistic", "realistic", "hyperrealistic", "ultra", "sharp", "focus", "lighting",
                      "style", "shot", "lens", "light", "colors", "colours", "soft", "dramatic", "beautiful"})
_DESCRIPTORS = _QUALITY | {w for table in (STYLES, LIGHTING, CAMERA) for words in table.values()
                           for phrase in words for w in re.findall(r"[\w'-]+", phrase)}
# Words said around a camera phrase that are not part of the scene ("the camera slowly pushes in").
_CAMERA_WORDS = frozenset({"camera", "slow", "slowly", "smooth", "smoothly", "gentle", "gently", "the", "a",
                           "quick", "fast", "steady", "shot"})
_SETTING_ENTRIES = tuple(tuple(entry.split()) for entry in SETTINGS)
MAX_SETTING_MODIFIERS = 2


@dataclass(frozen=True)
class ParsedPrompt:
    text: str  # the prompt as the user wrote it, whitespace normalised
    negations: Negations
    subject: str
    verb: VerbPhrase | None
    setting: str
    style: str | None  # None: the prompt names none
    lighting: str | None
    camera: str | None
    context: tuple[str, ...]  # the rest of the prompt, clause by clause, for every keyframe
    evidence: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> str:
        return self.negations.clean

    @property
    def action(self) -> str:
        return self.verb.action if self.verb else "still"


def _label(lower: str, table: dict[str, tuple[str, ...]]) -> tuple[str, str, tuple[int, int]] | None:
    """(label, the words, their span) of the first label in ``table`` whose words appear."""
    for label, words in table.items():
        for word in words:
            match = re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", lower)
            if match:
                return label, word, match.span()
    return None


def _camera_mask(tokens: list[Token], span: tuple[int, int] | None) -> set[int]:
    """Token positions that belong to the camera phrase (and "the camera slowly" around it)."""
    if span is None:
        return set()
    inside = {i for i, t in enumerate(tokens) if t.start >= span[0] and t.end <= span[1]}
    for i in sorted(inside):
        k = i - 1
        while k >= 0 and tokens[k].lower in _CAMERA_WORDS and tokens[k].is_word:
            inside.add(k)
            k -= 1
    return inside | {i for i, t in enumerate(tokens) if t.lower == "camera"}


def parse_prompt(prompt: str) -> ParsedPrompt:
    text = " ".join(prompt.split())
    negations = find_negations(text)
    lower = negations.clean.lower()
    evidence: dict[str, str] = {}
    if negations.phrases:
        evidence["negations"] = "; ".join(negations.phrases)
    labels: dict[str, str | None] = {}
    camera_span = None
    for name, table in (("style", STYLES), ("lighting", LIGHTING), ("camera", CAMERA)):
        found = _label(lower, table)
        labels[name] = found[0] if found else None
        if found:
            evidence[name] = found[1]
            camera_span = found[2] if name == "camera" else camera_span
    tokens = tokenize(negations.clean)
    masked = _camera_mask(tokens, camera_span)
    position = {id(t): i for i, t in enumerate(tokens)}
    clauses = []
    for clause in split_clauses(tokens):
        opening = framing_end(clause)
        clauses.append([t for t in clause[opening:] if position[id(t)] not in masked])
    subject, verb, main, consumed = _subject_and_verb(clauses)
    if verb:
        evidence["action"] = verb.written
    evidence["subject"] = subject
    setting = _setting(clauses, consumed, evidence)
    context = _context(clauses, consumed, verb, main)
    return ParsedPrompt(text, negations, subject, verb, setting, labels["style"], labels["lighting"],
                        labels["camera"], context, evidence)


def _is_descriptor(clause: list[Token]) -> bool:
    return all(t.lower in _DESCRIPTORS or t.lower in ARTICLES for t in clause)


def _subject_and_verb(clauses: list[list[Token]]) -> tuple[str, VerbPhrase | None, int, set[int]]:
    """The subject, the main verb, the main clause's index, and the ids of the tokens the subject used."""
    candidates = [i for i, clause in enumerate(clauses) if clause and not _is_descriptor(clause)]
    verb, main = None, candidates[0] if candidates else -1
    for i in candidates:
        verb = find_verb(clauses[i])
        if verb:
            main = i
            break
    words: list[Token] = []
    if verb:
        words = subject_tokens(clauses[main], 0, verb.first_index)
    # No noun before the verb ("a girl, dancing in the rain"): the first clause that names one.
    for i in [] if words else [c for c in candidates if not verb or c <= main]:
        clause = clauses[i]
        start = 0
        while start < len(clause) and (clause[start].lower in PREPOSITIONS | DETERMINERS):
            start += 1  # "in a dark forest" names a place, "on a sleeping cat" after a camera move
        words = subject_tokens(clause, start, verb.first_index if verb and i == main else None)
        if words:
            break
    consumed = {id(t) for t in words}
    for clause in clauses:  # the article before the subject goes with it
        for k, t in enumerate(clause[:-1]):
            if id(clause[k + 1]) in consumed and t.lower in ARTICLES and id(t) not in consumed:
                consumed.add(id(t))
    subject = " ".join(t.lower for t in words) or "scene"
    return subject, verb, main, consumed


def _setting(clauses: list[list[Token]], consumed: set[int], evidence: dict[str, str]) -> str:
    """The place after a preposition ("above a burning castle"), else any place word, else "unspecified"."""
    for clause in clauses:
        for i, tok in enumerate(clause):
            if tok.lower not in PREPOSITIONS or id(tok) in consumed:
                continue
            phrase = _noun_phrase(clause, i + 1)
            found = _place_in(phrase)
            if found:
                evidence["setting"] = " ".join(t.lower for t in clause[i:i + 1] + phrase)
                return found
    free = [[t for t in clause if id(t) not in consumed] for clause in clauses]
    for group in free + clauses:
        found = _place_in(group)
        if found:
            evidence["setting"] = found
            return found
    return "unspecified"


def _noun_phrase(clause: list[Token], start: int) -> list[Token]:
    phrase = []
    for tok in clause[start:start + 6]:
        if tok.lower in PREPOSITIONS or tok.lower in CONJUNCTIONS:
            break
        phrase.append(tok)
    return phrase


def _place_in(phrase: list[Token]) -> str | None:
    """The last place word(s) in ``phrase`` with up to two words that describe it."""
    words = [t.lower for t in phrase]
    for end in range(len(words), 0, -1):
        for entry in _SETTING_ENTRIES:
            if tuple(words[end - len(entry):end]) == entry:
                start = end - len(entry)
                while start > 0 and end - start < len(entry) + MAX_SETTING_MODIFIERS and \
                        words[start - 1] not in DETERMINERS and words[start - 1] not in ("of", "with"):
                    start -= 1
                return " ".join(words[start:end])
    return None


def _context(clauses: list[list[Token]], consumed: set[int], verb: VerbPhrase | None, main: int) -> tuple[str, ...]:
    """What each keyframe repeats: the prompt without its subject and verb ("above a burning castle")."""
    runs: list[list[str]] = []
    for i, clause in enumerate(clauses):
        skip = set(range(verb.first_index, verb.end_index)) if verb and i == main else set()
        runs.append([])
        for k, tok in enumerate(clause):
            if k in skip or id(tok) in consumed:
                runs.append([])  # the subject or verb splits the clause: "above a castle" stands alone
            else:
                runs[-1].append(tok.text)
    parts: list[str] = []
    for words in runs:
        while words and (words[0].lower() in CONJUNCTIONS or is_adverb(words[0].lower())):
            words = words[1:]
        while words and words[-1].lower() in CONJUNCTIONS | PREPOSITIONS | DETERMINERS:
            words = words[:-1]
        if words and " ".join(words) not in parts:
            parts.append(" ".join(words))
    return tuple(parts)
