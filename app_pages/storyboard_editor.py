"""The storyboard editor: a job that waits for review shows its keyframes here, to fix before Animate.

Each keyframe has its time, its prompt and its seed: edit the prompt and regenerate it (same or new
seed), replace it with an image of your own, move it in time, delete it, or insert a new one between
two others. Only the keyframes that changed are drawn again; then Animate runs the motion. Every edit
goes to the job's record. All the work is the backend's ``StoryboardEditor``; this page only asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app_pages.common import friendly_errors, generator, job_status, plain
from backend.errors import StoryboardError

if TYPE_CHECKING:
    from backend.jobs.orchestrator import JobStatus
    from backend.record import Storyboard

PER_ROW = 4


def storyboard_editor(status: "JobStatus") -> None:
    """Review-and-edit for a job in ``awaiting_review``."""
    job_id = status.id
    _follow_state(job_id)
    try:
        editor = generator().storyboard_editor()
        board = editor.load(job_id)[1]
    except StoryboardError as exc:
        now = job_status(job_id)
        if now is not None and now.state != "awaiting_review":  # queued or cancelled meanwhile: redraw
            st.rerun()
        st.error(plain(str(exc)))
        return
    with friendly_errors("show the storyboard"):
        files = editor.keyframe_files(job_id, len(board.frames))
        st.info("The keyframes are ready. Check them, fix what is wrong, then press **Animate** — motion starts "
                "only then. Nothing here uses the GPU until you regenerate a keyframe or animate.")
        for start in range(0, len(board.frames), PER_ROW):
            columns = st.columns(PER_ROW)
            for index in range(start, min(start + PER_ROW, len(board.frames))):
                with columns[index - start]:
                    _keyframe(job_id, board, index, files[index])
        _insert(job_id, board)
        _decide(job_id)
        if board.edits:
            st.caption(plain(f"{len(board.edits)} edit(s) so far; they are kept in the video's record."))


@st.fragment(run_every=2.0)
def _follow_state(job_id: str) -> None:
    """Redraw the page when the job leaves review elsewhere (Animate in another tab, ``continue`` on the CLI)."""
    status = job_status(job_id)
    if status is None or status.state != "awaiting_review":
        st.rerun()


def _keyframe(job_id: str, board: "Storyboard", index: int, file) -> None:
    frame = board.frames[index]
    key = f"sb_{job_id}_{index}"
    if file.is_file():
        st.image(file.read_bytes(), width="stretch")
    else:
        st.warning("No image yet")
    source = f"seed {frame.seed}" if frame.seed is not None else frame.source
    st.caption(plain(f"Keyframe {index + 1} · {frame.time:.2f} s · {source}"))
    prompt = st.text_area("Prompt", frame.prompt, key=f"{key}_prompt", height=110,
                          help="What this keyframe shows at its moment of the action.")
    new_seed = st.checkbox("New seed", key=f"{key}_newseed",
                           help="Draw it differently; leave off to keep the seed and change only the prompt.")
    if frame.source != "start image" and st.button("Regenerate", key=f"{key}_regen", icon=":material/refresh:"):
        with friendly_errors("regenerate the keyframe"):
            changed = prompt if prompt.strip() != frame.prompt else None
            generator().storyboard_editor().regenerate(job_id, index, prompt=changed, new_seed=new_seed)
            st.rerun()
    with st.popover("More", icon=":material/more_horiz:"):
        _replace(job_id, index, key)
        if 0 < index < len(board.frames) - 1:
            _move(job_id, board, index, key)
            if st.button("Delete keyframe", key=f"{key}_delete", icon=":material/delete:"):
                with friendly_errors("delete the keyframe"):
                    generator().storyboard_editor().delete(job_id, index)
                    st.rerun()


def _replace(job_id: str, index: int, key: str) -> None:
    upload = st.file_uploader("Replace with an image", type=["png", "jpg", "jpeg", "webp"], key=f"{key}_upload")
    if upload is not None and st.button("Use this image", key=f"{key}_use"):
        from backend.media.uploads import store_image

        with friendly_errors("use the image"):
            stored = store_image(upload.getvalue(), upload.name, generator().paths.uploads)
            generator().storyboard_editor().replace(job_id, index, stored.path)
            st.rerun()


def _move(job_id: str, board: "Storyboard", index: int, key: str) -> None:
    low, high = board.frames[index - 1].time, board.frames[index + 1].time
    when = st.number_input("Time (s)", min_value=float(low), max_value=float(high),
                           value=float(board.frames[index].time), step=0.1, key=f"{key}_time",
                           help="When in the video this keyframe is reached.")
    if st.button("Move", key=f"{key}_move"):
        with friendly_errors("move the keyframe"):
            generator().storyboard_editor().move(job_id, index, when)
            st.rerun()


def _insert(job_id: str, board: "Storyboard") -> None:
    if len(board.frames) < 2 or len(board.frames) >= board.max_keyframes:
        return
    with st.expander("Insert a keyframe"):
        first, last = board.frames[0].time, board.frames[-1].time
        when = st.number_input("At (s)", min_value=float(first), max_value=float(last), value=(first + last) / 2,
                               step=0.1, key=f"sb_{job_id}_insert_time")
        prompt = st.text_area("What it shows", key=f"sb_{job_id}_insert_prompt")
        if st.button("Insert and draw it", key=f"sb_{job_id}_insert", icon=":material/add:"):
            with friendly_errors("insert the keyframe"):
                generator().storyboard_editor().insert(job_id, when, prompt)
                st.rerun()


def _decide(job_id: str) -> None:
    cols = st.columns(2)
    if cols[0].button("Animate", key=f"sb_{job_id}_animate", type="primary", icon=":material/play_arrow:"):
        with friendly_errors("start the animation"):
            generator().storyboard_editor().animate(job_id)
            st.rerun()
    if cols[1].button("Discard", key=f"sb_{job_id}_discard", icon=":material/delete_forever:"):
        with friendly_errors("discard the storyboard"):
            generator().cancel(job_id)
            st.rerun()
