"""Variations: one base JobSpec, one setting varied over a list of values, queued as a group.

``expand`` is pure: it turns a base spec, an axis (seed, guidance, motion strength, engine, grade) and
values into validated specs with a label each ("seed 43"); a bad value is a ``SpecError`` that names
it. Every variation of a non-seed axis shares one seed (drawn once if the base has none), so the
videos differ only in the setting varied. ``submit_group`` queues them in one transaction and records
the group in the store's ``job_groups`` table (a row per job: group id, position, label, axis).
"""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from backend.errors import SpecError
from backend.jobs.queue_tools import optional_read
from backend.jobs.store import JobStore
from backend.spec import ENGINES, GRADES, MAX_SEED, JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator

AXES: dict[str, str] = {"seed": "seed", "guidance": "guidance", "motion_strength": "motion strength",
                        "engine": "engine", "grade": "grade"}
CHOICES: dict[str, tuple[str, ...]] = {"engine": ENGINES, "grade": GRADES}
MIN_VARIATIONS, MAX_VARIATIONS = 2, 12
_SPLIT = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class Variation:
    label: str  # what differs, e.g. "seed 43", "guidance 7.5", "engine wan"
    value: Any
    spec: JobSpec  # validated


@dataclass(frozen=True)
class GroupMember:
    group_id: str
    job_id: str
    position: int
    label: str
    axis: str
    created: float


# --- values ---------------------------------------------------------------------------------
def consecutive_seeds(start: int, count: int) -> list[int]:
    """``count`` seeds from ``start`` on (wrapping past the largest seed)."""
    _check_count(count)
    return [(int(start) + i) % (MAX_SEED + 1) for i in range(count)]


def random_seeds(count: int) -> list[int]:
    """``count`` different random seeds."""
    _check_count(count)
    seeds: list[int] = []
    while len(seeds) < count:
        seed = secrets.randbelow(MAX_SEED + 1)
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def parse_values(axis: str, text: str) -> list[Any]:
    """Values typed as a list ("5, 7.5 10" or "ltx wan"), converted for ``axis``; SpecError names a bad one."""
    _check_axis(axis)
    words = [w for w in _SPLIT.split(text or "") if w]
    return [_convert(axis, word) for word in words]


def _convert(axis: str, word: str) -> Any:
    where = f"variations.{axis}"
    if axis in CHOICES:
        value = word.strip().lower()
        if value not in CHOICES[axis]:
            raise SpecError(where, f"'{word}' is not a {AXES[axis]}; choose from: {', '.join(CHOICES[axis])}.")
        return value
    if axis == "seed":
        if not re.fullmatch(r"\d+", word):
            raise SpecError(where, f"'{word}' is not a seed: seeds are whole numbers from 0 to {MAX_SEED}.")
        return int(word)
    try:
        number = float(word)
    except ValueError:
        raise SpecError(where, f"'{word}' is not a number for {AXES[axis]} (e.g. 5 or 7.5).") from None
    if not math.isfinite(number):
        raise SpecError(where, f"'{word}' is not a number for {AXES[axis]} (e.g. 5 or 7.5).")
    return number


def label(axis: str, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{AXES.get(axis, axis)} {text}"


# --- expansion ------------------------------------------------------------------------------
def expand(base: JobSpec, axis: str, values: Sequence[Any]) -> list[Variation]:
    """One validated spec per value of ``axis``, in the order given (SpecError names a bad value)."""
    _check_axis(axis)
    _check_count(len(values))
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise SpecError(f"variations.{axis}", f"{label(axis, value)} is listed twice; each value once.")
        seen.add(value)
    if axis != "seed":
        base = base.with_seed()  # one seed for all: the videos differ only in the setting varied
    variations = []
    for value in values:
        try:
            spec = _apply(base, axis, value).validate()
        except SpecError as exc:
            raise SpecError(f"variations.{axis}", f"{label(axis, value)}: {exc.message}") from None
        variations.append(Variation(label(axis, value), value, spec))
    return variations


def _apply(base: JobSpec, axis: str, value: Any) -> JobSpec:
    if axis == "grade":
        return replace(base, finish=replace(base.finish, grade=value))
    return replace(base, **{axis: value})


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise SpecError("variations.axis", f"'{axis}' cannot be varied; choose one of: {', '.join(AXES)}.")


def _check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not MIN_VARIATIONS <= count <= MAX_VARIATIONS:
        raise SpecError("variations", f"Variations need {MIN_VARIATIONS} to {MAX_VARIATIONS} values; got {count}.")


# --- groups in the store --------------------------------------------------------------------
def submit_group(gen: "VideoGenerator", variations: Sequence[Variation], axis: str) -> tuple[str, list[str]]:
    """Queue the variations (all or none) and record them as one group; returns (group id, job ids)."""
    _check_axis(axis)
    job_ids = gen.submit_all([v.spec for v in variations])
    group_id = uuid.uuid4().hex
    save_group(gen.store, group_id, axis, [(job_id, v.label) for job_id, v in zip(job_ids, variations)])
    return group_id, job_ids


def save_group(store: JobStore, group_id: str, axis: str, members: Sequence[tuple[str, str]]) -> None:
    now = time.time()
    with store._connect() as db:  # noqa: SLF001 - the store's own write path (same package)
        db.executemany(
            "INSERT OR REPLACE INTO job_groups (job_id, group_id, position, label, axis, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(job_id, group_id, i, text, axis, now) for i, (job_id, text) in enumerate(members)],
        )


def group_members(store: JobStore, group_id: str) -> list[GroupMember]:
    """The group's jobs still in the history, in the order they were queued."""
    rows = optional_read(store, lambda db: db.execute(
        "SELECT * FROM job_groups WHERE group_id = ? ORDER BY position", (group_id,)).fetchall(), [])
    return [_member(r) for r in rows]


def group_of(store: JobStore, job_id: str) -> GroupMember | None:
    row = optional_read(store, lambda db: db.execute(
        "SELECT * FROM job_groups WHERE job_id = ?", (job_id,)).fetchone(), None)
    return _member(row) if row is not None else None


def groups_by_job(store: JobStore) -> dict[str, GroupMember]:
    """Every grouped job's membership, by job id (one query for a whole listing)."""
    rows = optional_read(store, lambda db: db.execute("SELECT * FROM job_groups").fetchall(), [])
    return {r["job_id"]: _member(r) for r in rows}


def _member(row: Any) -> GroupMember:
    return GroupMember(str(row["group_id"]), str(row["job_id"]), int(row["position"]), str(row["label"]),
                       str(row["axis"]), float(row["created"]))
