"""The motion segments finished so far, each playable as soon as it exists ("Segment 1/3", …).

The worker thread makes each preview (``backend.media.segment_previews``) right after the segment is saved;
this only lists them in the job's work folder, resolves each inside ``temp/`` and reads it. A preview that
vanishes while it is read (a finished job's work folder is deleted) is left out.
"""

from __future__ import annotations

import streamlit as st

from app_pages.common import generator, preview_file

COLUMNS = 3


def segment_previews(job_id: str) -> None:
    from backend.media.segment_previews import finished_previews

    shown = []
    for preview in finished_previews(generator().paths.job_workdir(job_id)):
        path = preview_file(preview.path)
        if path is None:
            continue
        try:
            shown.append((preview, path.read_bytes()))
        except OSError:
            continue
    if not shown:
        return
    st.caption("Motion segments (each plays as soon as it is made)")
    for row in range(0, len(shown), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, (preview, data) in zip(cols, shown[row: row + COLUMNS]):
            with col:
                st.caption(f"Segment {preview.number}/{preview.total}")
                st.video(data, format="video/mp4", loop=True, muted=True)
