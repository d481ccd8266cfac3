"""Clauses, verbs and subjects: who does what in a prompt.

No part-of-speech model: a word is read as a verb when the verb lexicon knows its form *and* its
place says so. After "a", "the", an adjective or a preposition it describes a noun ("a burning
castle"); after a noun it is what that noun does ("a dragon ... uncoiling", "two astronauts shake
hands"). The subject is the noun phrase before the verb, with its modifiers kept whole ("dragon
made of smoke", "woman in a red coat").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.prompting.verbs import NOUN_LIKE, VerbForms, lookup
from backend.prompting.vocabulary import (
    ADJECTIVES,
    ARTICLES,
    CONJUNCTIONS,
    DETERMINERS,
    FRAMING_NOUNS,
    PARTICLES,
    PREPOSITIONS,
    PRONOUNS_PLURAL,
    SETTINGS,
)

_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")
CLAUSE_BREAKS = frozenset({"while", "as", "then", "whereas", "when", "where", "until"})
# Participles that describe the subject rather than say what it does; they take their phrase along.
SUBJECT_MODIFIERS = frozenset({
    "made", "dressed", "covered", "wrapped", "carved", "built", "clad", "filled", "formed", "crafted", "woven",
    "sculpted", "painted", "decorated", "adorned", "draped", "surrounded", "topped", "crowned", "shaped",
    "composed", "lit", "wearing", "holding", "carrying", "cloaked", "armed", "bathed", "framed",
})
SOFT_ACTIONS = frozenset({"holding", "carrying"})
# Verb + particle pairs that take an object after the particle ("picks up a cup"), never a place.
PHRASAL = frozenset({("pick", "up"), ("take", "off"), ("take", "out"), ("pick", "out"), ("give", "away"),
                     ("turn", "off"), ("light", "up"), ("clean", "up"), ("open", "up"), ("fill", "up"),
                     ("hold", "up"), ("lift", "up"), ("put", "down"), ("set", "down"), ("put", "away"),
                     ("throw", "away"), ("wipe", "off"), ("fold", "up"), ("roll", "up"), ("pull", "out")})
CLAUSE_END_PARTICLES = frozenset({"in", "on", "over", "by", "past", "along", "through", "inside", "outside",
                                  "across", "about", "behind", "under"})  # the action only when nothing else happens
_LY_NOUNS = frozenset({"family", "butterfly", "dragonfly", "firefly", "lily", "jelly", "belly", "holly", "italy",
                       "early", "jolly", "silly", "lonely", "lovely", "ugly", "friendly", "chilly", "curly", "only"})
_SINGULAR_PRONOUNS = frozenset({"he", "she", "it", "someone", "everyone"})
MAX_SUBJECT_WORDS = 8
MAX_OBJECT_WORDS = 4
_SETTING_WORDS = frozenset(w for entry in SETTINGS for w in entry.split())
_NOT_BEFORE_VERBS = DETERMINERS | PREPOSITIONS | ADJECTIVES | CONJUNCTIONS | {"of", "with"}


@dataclass(frozen=True)
class Token:
    text: str
    lower: str
    start: int
    end: int

    @property
    def is_word(self) -> bool:
        return self.lower[0].isalnum()


@dataclass(frozen=True)
class VerbPhrase:
    forms: VerbForms
    tense: str  # "progressive" | "present" | "past"
    written: str  # the user's words: "shake hands", "slowly uncoiling"
    complement: str  # "hands", "a newspaper", "" (particles, object, trailing adverb)
    adverb: str  # "slowly", or ""
    first_index: int  # token index in its clause where the phrase starts (its adverb, or the verb)
    index: int  # the verb's token index
    end_index: int  # index after the last token of the phrase
    start: int  # character span in the text, adverb included
    end: int

    @property
    def progressive(self) -> str:
        """The action in the -ing form, whatever the user's tense: "shaking hands", "slowly uncoiling"."""
        return " ".join(w for w in (self.adverb, self.forms.ing, self.complement) if w)

    @property
    def action(self) -> str:
        """The action as a label: "shaking hands", "slowly uncoiling"; a past state as written ("frozen")."""
        return self.written if self.tense == "past" else self.progressive


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def split_clauses(tokens: list[Token]) -> list[list[Token]]:
    """Clauses end at punctuation and at "while", "as", "then"...; the break words are dropped."""
    clauses: list[list[Token]] = [[]]
    for tok in tokens:
        if not tok.is_word or tok.lower in CLAUSE_BREAKS:
            clauses.append([])
        else:
            clauses[-1].append(tok)
    return [clause for clause in clauses if clause]


def is_adverb(word: str) -> bool:
    return len(word) > 4 and word.endswith("ly") and word not in _LY_NOUNS


def framing_end(clause: list[Token]) -> int:
    """Tokens that open a framing phrase ("a cinematic shot of"); 0 when there is none."""
    for i, tok in enumerate(clause[:6]):
        if tok.lower == "of" and i > 0 and clause[i - 1].lower in FRAMING_NOUNS:
            return i + 1
    return 0


def _previous(clause: list[Token], i: int, start: int) -> int | None:
    """The index of the word before ``i``, looking past adverbs ("a flower slowly opening")."""
    k = i - 1
    while k >= start and is_adverb(clause[k].lower):
        k -= 1
    return k if k >= start else None


def _plural_before(clause: list[Token], k: int, start: int) -> bool:
    word = clause[k].lower
    if word in PRONOUNS_PLURAL or any(t.lower == "and" for t in clause[start:k]):
        return True
    return word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3


def _is_verb(clause: list[Token], i: int, start: int) -> tuple[VerbForms, str] | None:
    """The verb at ``i`` and its tense, if the word is a verb form in a verb's place."""
    found = lookup(clause[i].lower)
    if found is None or clause[i].lower in SUBJECT_MODIFIERS:
        return None
    forms, kind = found
    k = _previous(clause, i, start)
    if k is None:  # a clause that opens with "dancing in the rain" continues the one before
        return (forms, "progressive") if kind == "progressive" else None
    prev = clause[k].lower
    if prev in _NOT_BEFORE_VERBS:
        return None  # "a burning castle", "above the falling snow", "a cup of steaming tea"
    following = lookup(clause[i + 1].lower) if i + 1 < len(clause) else None
    if kind == "third":
        if following is not None and following[1] in ("progressive", "past"):
            return None  # "ocean waves crashing": "waves" is the noun doing it
        if clause[i].lower in NOUN_LIKE:
            earlier_preposition = any(t.lower in PREPOSITIONS for t in clause[start:i])
            after_article = k - 1 >= start and clause[k - 1].lower in DETERMINERS
            if earlier_preposition or not (after_article or prev in _SINGULAR_PRONOUNS):
                return None  # "city lights", "with neon lights"; but "a girl waves"
        return forms, "present"
    if kind == "base":
        return (forms, "present") if _plural_before(clause, k, start) else None
    return forms, kind


def find_verb(clause: list[Token], start: int = 0) -> VerbPhrase | None:
    """The clause's main verb with its complement; "holding" or "carrying" only when nothing else happens."""
    soft: int | None = None
    for i in range(start, len(clause)):
        if clause[i].lower in SOFT_ACTIONS and soft is None and _previous(clause, i, start) is not None:
            soft = i
        found = _is_verb(clause, i, start)
        if found is not None:
            return _phrase(clause, i, start, *found)
    if soft is not None:
        forms, _ = lookup(clause[soft].lower) or (None, "")
        if forms is not None:
            return _phrase(clause, soft, start, forms, "progressive")
    return None


def _phrase(clause: list[Token], i: int, start: int, forms: VerbForms, tense: str) -> VerbPhrase:
    first = i
    while first - 1 >= start and is_adverb(clause[first - 1].lower):
        first -= 1
    adverb = " ".join(t.lower for t in clause[first:i])
    j = i + 1
    while j < len(clause) and clause[j].lower in PARTICLES and (
            (forms.lemma, clause[j].lower) in PHRASAL
            or not (j + 1 < len(clause) and clause[j + 1].lower in DETERMINERS)):
        j += 1  # "curling up", "drifting away", "picks up a cup" (but "runs down the street": a place)
    if j + 1 == len(clause) and clause[j].lower in CLAUSE_END_PARTICLES:
        j += 1  # "a storm rolls in", "a train passes by": a preposition that ends the clause has no object
    if j < len(clause) and clause[j].lower not in PREPOSITIONS | CONJUNCTIONS and _object_word(clause[j].lower):
        taken = 0
        while j < len(clause) and taken < MAX_OBJECT_WORDS and _object_word(clause[j].lower) \
                and not (taken and lookup(clause[j].lower)):
            j += 1
            taken += 1
    while j < len(clause) and is_adverb(clause[j].lower):
        j += 1  # "sleeping peacefully"
    complement = " ".join(t.lower for t in clause[i + 1:j])
    written = " ".join(t.lower for t in clause[first:j])
    return VerbPhrase(forms, tense, written, complement, adverb, first, i, j, clause[first].start, clause[j - 1].end)


def _object_word(word: str) -> bool:
    return word not in PREPOSITIONS and word not in CONJUNCTIONS and not is_adverb(word)


def subject_tokens(clause: list[Token], start: int, stop: int | None) -> list[Token]:
    """The noun phrase between ``start`` and the verb (or the first place, without a verb), articles dropped.

    "of", "with" (not prepositions here) and a modifier's own phrase ("made of smoke", "dressed in
    red") stay in the subject; any other preposition ends it, unless a verb follows and the phrase
    names no place ("a man in a red coat walks").
    """
    end = len(clause) if stop is None else stop
    words: list[Token] = []
    bound = False
    for k in range(start, end):
        tok = clause[k]
        if tok.lower in SUBJECT_MODIFIERS:
            bound = True
        elif bound and (tok.lower in PREPOSITIONS or tok.lower == "of"):
            bound = False  # a modifier takes one phrase: "covered in snow", not "... in snow on a hill"
        elif tok.lower in PREPOSITIONS and (stop is None or {t.lower for t in clause[k:end]} & _SETTING_WORDS):
            break
        words.append(tok)
    while words and (words[-1].lower in PREPOSITIONS or is_adverb(words[-1].lower)):
        words.pop()
    while words and (words[0].lower in ARTICLES or words[0].lower in PREPOSITIONS):
        words.pop(0)  # "(the camera pushes in) on an old man reading"
    return words[:MAX_SUBJECT_WORDS]
