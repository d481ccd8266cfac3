"""AppTest: the Gallery grid — filters and sort, favourites, details with a readable record, open in Create,
generate again, delete (the question above its buttons) and bulk delete. No model runs (jobs are faked)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ui_support import (  # noqa: F401 - fixtures
    fake_done_job,
    idle_studio,
    new_app,
    open_page,
    run,
    studio_home,
    texts,
    unknown_elements,
)

from app_pages.common import generator
from backend.jobs.favourites import favourite_ids

pytestmark = pytest.mark.ui

GALLERY = "app_pages/gallery.py"


def in_order(at) -> list:
    """Every element of the page in the order the browser shows them."""
    found: list = []

    def walk(node) -> None:
        found.append(node)
        for _, child in sorted(getattr(node, "children", {}).items()):
            walk(child)

    walk(at._tree)
    return found


def position(at, predicate) -> int:
    return next(i for i, node in enumerate(in_order(at)) if predicate(node))


def prompts(at) -> list[str]:
    return [t.value for t in at.text]


def test_grid_filters_sorts_and_favourites(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    fox = fake_done_job(gen, "a red fox running through snow")
    owl = fake_done_job(gen, "an owl over snow at dusk", engine="wan")
    with gen.store._connect() as db:
        db.execute("UPDATE jobs SET spec = json_set(spec, '$.seed', 99) WHERE id = ?", (owl,))
    ship = fake_done_job(gen, "a ship in a storm")
    at = open_page(run(new_app()), GALLERY)
    assert prompts(at)[:3] == ["a ship in a storm", "an owl over snow at dusk", "a red fox running through snow"]

    at.text_input(key="g_filter").input("snow FOX")  # every word, any order, any case
    run(at)
    assert "a red fox running through snow" in prompts(at) and len(prompts(at)) == 1
    at.text_input(key="g_filter").input("")
    at.text_input(key="g_seed").input("99")
    run(at)
    assert prompts(at) == ["an owl over snow at dusk"]
    at.text_input(key="g_seed").input("")
    at.multiselect(key="g_engines").set_value(["wan"])
    run(at)
    assert prompts(at) == ["an owl over snow at dusk"]
    at.multiselect(key="g_engines").set_value([])
    at.selectbox(key="g_sort").set_value("oldest")
    run(at)
    assert prompts(at)[0] == "a red fox running through snow"

    at.button(key=f"g_fav_{ship}").click()
    run(at)
    assert favourite_ids(gen.store) == {ship}
    at.toggle(key="g_favs_only").set_value(True)
    run(at)
    assert prompts(at) == ["a ship in a storm"]
    at.button(key=f"g_fav_{ship}").click()  # the star again: no longer a favourite
    run(at)
    assert favourite_ids(gen.store) == set() and "No video matches." in texts(at)
    assert {fox, owl}  # both still there, only filtered out


def test_period_and_state_filters(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    old = fake_done_job(gen, "an old video")
    fake_done_job(gen, "a new video")
    with gen.store._connect() as db:  # finished 40 days ago
        db.execute("UPDATE jobs SET finished = ?, created = ? WHERE id = ?", (time.time() - 40 * 86400,) * 2 + (old,))
    failed = gen.submit(fake_spec("a failed one"))
    gen.store.finish(failed, "failed", error="broke")
    at = open_page(run(new_app()), GALLERY)
    assert "an old video" in prompts(at) and "a failed one" not in prompts(at)
    at.selectbox(key="g_period").set_value("month")
    run(at)
    assert prompts(at) == ["a new video"]
    at.selectbox(key="g_period").set_value("any")
    at.multiselect(key="g_states").set_value(["failed"])
    run(at)
    assert prompts(at) == ["a failed one"] and "failed" in texts(at)


def fake_spec(prompt: str):
    from backend.spec import JobSpec

    return JobSpec(prompt=prompt, model_set="tiny", width=256, height=144, duration=2.0, fps=8)


def test_the_delete_question_sits_above_its_buttons(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    fox = fake_done_job(gen, "a red fox running through snow")
    at = open_page(run(new_app()), GALLERY)
    at.button(key=f"g_delete_{fox}").click()
    run(at)
    question = position(at, lambda n: type(n).__name__ == "Warning" and "cannot be undone" in str(n.value))
    yes = position(at, lambda n: getattr(n, "key", None) == f"g_yes_{fox}")
    keep = position(at, lambda n: getattr(n, "key", None) == f"g_keep_{fox}")
    assert question < yes < keep
    at.button(key=f"g_keep_{fox}").click()
    run(at)
    assert gen.status(fox).state == "done" and "cannot be undone" not in texts(at)


def test_details_show_a_readable_record_and_reuse_the_settings(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    fox = fake_done_job(gen, "a red fox running through snow", guidance=6.5)
    at = open_page(run(new_app()), GALLERY)
    at.button(key=f"g_open_{fox}").click()
    run(at)
    table = at.dataframe[0].value
    facts = dict(zip(table["field"], table["value"]))
    assert facts["Prompt"] == "a red fox running through snow" and facts["Seed"] == "7"
    assert facts["Guidance"] == "6.5" and facts["Steps"] == "preset default" and facts["Size"] == "256×144"
    assert facts["Job id"] == fox and facts["State"] == "done"
    assert any('"prompt": "a red fox running through snow"' in c.value for c in at.code)  # full JSON, copyable
    assert len(unknown_elements(at, "video")) == 1  # the details play the video

    at.button(key="gd_again").click()  # generate again: same settings, a new seed, followed on the Live job page
    run(at)
    again = [j for j in gen.queue() if j.id != fox]
    assert len(again) == 1 and again[0].spec["prompt"] == "a red fox running through snow"
    assert again[0].spec["guidance"] == 6.5 and [t.value for t in at.title] == ["Live job"]

    at.query_params.clear()  # the Live job page's ?job= would focus the gallery on the new (queued) job
    at = open_page(at, GALLERY)
    at.button(key=f"g_reuse_{fox}").click()  # open in Create, from the card's menu
    run(at)
    assert [t.value for t in at.title] == ["Create"]
    assert at.text_area(key="c_prompt").value == "a red fox running through snow"
    assert at.number_input(key="c_seed").value == 7 and at.number_input(key="c_guidance").value == 6.5


def test_bulk_delete_asks_first_and_compare_opens_with_the_selection(idle_studio: Path) -> None:  # noqa: F811 - pytest fixture
    gen = generator()
    a, b, c = (fake_done_job(gen, f"video {name}") for name in "abc")
    at = open_page(run(new_app()), GALLERY)
    at.checkbox(key=f"g_sel_{a}").check()
    at.checkbox(key=f"g_sel_{b}").check()
    run(at)
    assert "2 selected" in texts(at)
    at.button(key="g_bulk_delete").click()
    run(at)
    question = position(at, lambda n: type(n).__name__ == "Warning" and "2 selected" in str(n.value))
    assert question < position(at, lambda n: getattr(n, "key", None) == "g_bulk_yes")
    assert gen.status(a).state == "done"  # asked first
    at.button(key="g_bulk_keep").click()
    run(at)
    at.button(key="g_bulk_compare").click()
    run(at)
    assert [t.value for t in at.title] == ["Compare"] and at.multiselect(key="cmp_jobs").value == [b, a]

    at = open_page(at, GALLERY)
    at.checkbox(key=f"g_sel_{a}").check()
    at.checkbox(key=f"g_sel_{b}").check()
    run(at)
    at.button(key="g_bulk_delete").click()
    run(at)
    at.button(key="g_bulk_yes").click()
    run(at)
    assert [j.id for j in gen.history()] == [c] and prompts(at) == ["video c"]
