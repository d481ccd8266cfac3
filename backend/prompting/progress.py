"""How an action reads at a moment of the shot: "beginning to uncoil", "mid-uncoil, half uncoiled",
"fully uncoiled". A keyframe at phase 0..1 gets the words for its moment; a segment between two
keyframes gets motion words for engines that read text.

An action with an end state (uncoil, shake hands, melt) is told as start → middle → done; one that
goes on (walk, fly, crash) as start → under way → further along. A still scene moves by its camera.
"""

from __future__ import annotations

from backend.prompting.clauses import VerbPhrase
from backend.prompting.verbs import END_STATES
from backend.prompting.vocabulary import CAMERA_ARCS, CAMERA_MOTION

# Moments of the shot, by phase: (upper bound, name). Enough names that up to 7 keyframes all differ.
MOMENTS: tuple[tuple[float, str], ...] = (
    (0.0, "begin"), (0.3, "early"), (0.45, "underway"), (0.55, "middle"), (0.8, "late"), (0.999, "nearly"),
    (1.0, "end"),
)
# Telic (has an end state). {S} subject, {L} lemma, {G} -ing form, {P} participle, {C} " complement".
_TELIC = {
    "begin": "{S} beginning to {L}{C}", "early": "{S} {G}{C}, the first moments",
    "underway": "{S} {G}{C}, partly {P}", "middle": "{S} mid-{L}{C}, half {P}",
    "late": "{S} mostly {P}{C}, still {G}", "nearly": "{S} almost fully {P}{C}", "end": "{S} fully {P}{C}",
}
# Telic with an object ("shake hands"): "half shaken hands" would not be English.
_TELIC_OBJECT = {
    "begin": "{S} beginning to {L}{C}", "early": "{S} starting to {L}{C}", "underway": "{S} {G}{C}",
    "middle": "{S} halfway through {G}{C}", "late": "{S} {G}{C}, nearly done",
    "nearly": "{S} about to finish {G}{C}", "end": "{S} having {P}{C}",
}
_ONGOING = {
    "begin": "{S} starting to {L}{C}", "early": "{S} {G}{C}, early in the shot",
    "underway": "{S} {G}{C}, a little further on", "middle": "{S} {G}{C}, midway",
    "late": "{S} still {G}{C}, further along", "nearly": "{S} still {G}{C}, near the end",
    "end": "{S} {G}{C}, {END}",
}
_STILL = {
    "begin": "{S}", "early": "{S}, a moment later", "underway": "{S}, a little later", "middle": "{S}, midway",
    "late": "{S}, later on", "nearly": "{S}, near the end", "end": "{S}, final moment",
}


def moment(phase: float) -> str:
    """The name of the moment at ``phase`` (0 = the first keyframe, 1 = the last)."""
    if phase <= 0.0:
        return "begin"
    if phase >= 1.0:
        return "end"
    return next(name for bound, name in MOMENTS[1:] if phase < bound)


def _fill(template: str, subject: str, verb: VerbPhrase | None) -> str:
    if verb is None:
        return template.format(S=subject)
    complement = f" {verb.complement}" if verb.complement else ""
    forms = verb.forms
    end = END_STATES.get(forms.lemma, "at the end of the shot")
    return template.format(S=subject, L=forms.lemma, G=forms.ing, P=forms.participle, C=complement, END=end)


def action_at(subject: str, verb: VerbPhrase | None, phase: float) -> str:
    """The subject doing the action at ``phase``: "dragon made of smoke beginning to uncoil"."""
    name = moment(phase)
    if verb is None:
        return _fill(_STILL[name], subject, None)
    if _has_end(verb):
        table = _TELIC_OBJECT if verb.complement else _TELIC
    else:
        table = _ONGOING
    return _fill(table[name], subject, verb)


def _has_end(verb: VerbPhrase) -> bool:
    """An action that finishes ("uncoil", "frozen"), rather than one that goes on ("walk")."""
    return verb.forms.telic or verb.tense == "past"


def framing_at(camera: str, phase: float) -> str:
    """The camera's framing at ``phase`` ("wide shot" → "close shot" for a push in); "" for a static camera."""
    start, middle, end = CAMERA_ARCS.get(camera, CAMERA_ARCS["static"])
    return start if phase < 1 / 3 else middle if phase < 2 / 3 else end


_SPOKEN = {"begin": "the start", "early": "early on", "underway": "under way", "middle": "halfway",
           "late": "late in the motion", "nearly": "near the end", "end": "the end"}


def motion_between(subject: str, verb: VerbPhrase | None, camera: str, start: float, end: float) -> str:
    """Motion text for the segment from phase ``start`` to ``end``: what moves, how far, and the camera."""
    doing = verb.progressive if verb else "subtle natural motion"
    span = f"from {_SPOKEN[moment(start)]} to {_SPOKEN[moment(end)]}"
    camera_text = CAMERA_MOTION.get(camera, CAMERA_MOTION["static"])
    return f"{subject} {doing}, {span}, smooth motion, {camera_text}" if verb else \
        f"{subject}, {doing}, {span}, {camera_text}"
