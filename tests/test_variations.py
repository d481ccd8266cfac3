"""Variations: expanding a base spec over one setting (pure), groups and favourites in the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from backend.errors import SpecError
from backend.jobs.favourites import favourite_ids, set_favourite
from backend.jobs.store import JobStore
from backend.jobs.variations import (
    MAX_VARIATIONS,
    consecutive_seeds,
    expand,
    group_members,
    group_of,
    groups_by_job,
    parse_values,
    random_seeds,
    save_group,
)
from backend.spec import MAX_SEED, JobSpec

pytestmark = pytest.mark.unit

BASE = JobSpec(prompt="a red fox running through snow", model_set="tiny", width=256, height=144, duration=2.0,
               fps=8, seed=42)


def test_seeds_consecutive_and_random() -> None:
    assert consecutive_seeds(42, 3) == [42, 43, 44]
    assert consecutive_seeds(MAX_SEED, 2) == [MAX_SEED, 0]
    seeds = random_seeds(5)
    assert len(set(seeds)) == 5 and all(0 <= s <= MAX_SEED for s in seeds)
    for bad in (1, MAX_VARIATIONS + 1):
        with pytest.raises(SpecError, match="2 to 12"):
            consecutive_seeds(0, bad)


def test_expand_seeds_labels_each_variation() -> None:
    variations = expand(BASE, "seed", consecutive_seeds(43, 3))
    assert [v.label for v in variations] == ["seed 43", "seed 44", "seed 45"]
    assert [v.spec.seed for v in variations] == [43, 44, 45]
    assert all(v.spec.prompt == BASE.prompt and v.spec.width == 256 for v in variations)


@pytest.mark.parametrize(("axis", "text", "read", "labels"), [
    ("guidance", "5, 7.5 10", lambda s: s.guidance, ["guidance 5", "guidance 7.5", "guidance 10"]),
    ("motion_strength", "0.2;0.8", lambda s: s.motion_strength, ["motion strength 0.2", "motion strength 0.8"]),
    ("engine", "LTX wan", lambda s: s.engine, ["engine ltx", "engine wan"]),
    ("grade", "warm, noir", lambda s: s.finish.grade, ["grade warm", "grade noir"]),
])
def test_expand_one_setting_keeps_the_rest(axis, text, read, labels) -> None:
    base = JobSpec(prompt="a lighthouse", model_set="tiny", width=256, height=144)  # no seed: drawn once for all
    variations = expand(base, axis, parse_values(axis, text))
    assert [v.label for v in variations] == labels
    assert [read(v.spec) for v in variations] == [v.value for v in variations]
    seeds = {v.spec.seed for v in variations}
    assert len(seeds) == 1 and None not in seeds  # the same seed: only the setting varied differs


@pytest.mark.parametrize(("axis", "text", "named"), [
    ("guidance", "5, abc", "'abc'"),
    ("guidance", "5, 45", "guidance 45"),  # out of range: the spec's own rule, with the value named
    ("motion_strength", "0.5 1.5", "motion strength 1.5"),
    ("seed", "1, -2", "'-2'"),
    ("seed", "7 7.5", "'7.5'"),
    ("engine", "ltx, sora", "'sora'"),
    ("grade", "warm sepia", "'sepia'"),
    ("guidance", "5 5", "guidance 5 is listed twice"),
    ("guidance", "5 inf", "'inf'"),
])
def test_a_bad_value_is_named(axis, text, named) -> None:
    with pytest.raises(SpecError) as error:
        expand(BASE, axis, parse_values(axis, text))
    assert named in error.value.message and error.value.field == f"variations.{axis}"


def test_bad_axis_and_counts() -> None:
    with pytest.raises(SpecError, match="cannot be varied"):
        expand(BASE, "prompt", ["a", "b"])
    with pytest.raises(SpecError, match="2 to 12"):
        expand(BASE, "guidance", [5.0])
    with pytest.raises(SpecError, match="2 to 12"):
        expand(BASE, "seed", list(range(MAX_VARIATIONS + 1)))


def test_groups_and_favourites_in_the_store(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "studio.db")
    store.add_all([("a", {"prompt": "x"}), ("b", {"prompt": "y"}), ("c", {"prompt": "z"})])
    save_group(store, "g1", "seed", [("a", "seed 1"), ("b", "seed 2")])
    assert [(m.job_id, m.label, m.position) for m in group_members(store, "g1")] == [("a", "seed 1", 0),
                                                                                   ("b", "seed 2", 1)]
    assert group_of(store, "b").group_id == "g1" and group_of(store, "c") is None
    assert set(groups_by_job(store)) == {"a", "b"}

    assert set_favourite(store, "a", True) and set_favourite(store, "a", True)
    assert not set_favourite(store, "nope", True)
    assert favourite_ids(store) == {"a"}
    store.delete("a")  # a deleted job leaves neither its group row nor its star behind
    assert favourite_ids(store) == set() and [m.job_id for m in group_members(store, "g1")] == ["b"]
    assert set_favourite(store, "b", True) and set_favourite(store, "b", False) and favourite_ids(store) == set()


def test_a_database_from_before_the_new_tables_gains_them(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    JobStore(db).add("a", {"prompt": "x"})
    with sqlite3.connect(db) as conn:
        for table in ("job_groups", "queue_flags", "favourites"):
            conn.execute(f"DROP TABLE {table}")
    store = JobStore(db)  # opened again: the missing tables are created, the job is kept
    assert store.get("a") is not None and favourite_ids(store) == set()
    save_group(store, "g", "seed", [("a", "seed 1")])
    assert group_of(store, "a").label == "seed 1"
