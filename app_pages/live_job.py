"""Live job page: the job this tab follows (from the URL, so a refresh reopens it)."""

from __future__ import annotations

import streamlit as st

from app_pages.common import PAGE_CREATE, friendly_errors, generator, go, watch, watched_job
from app_pages.job_panel import job_panel

st.title("Live job")
job_id = watched_job()
if job_id is None:
    # Nothing chosen in this tab: follow what the server is doing (a job started in another tab).
    with friendly_errors("read the queue"):
        active = generator().queue()
        recent = active or generator().history(limit=1)
        if recent:
            job_id = recent[0].id
            watch(job_id)

if job_id is None:
    st.info("No job yet. Describe a video on the Create page and press Generate.")
    if st.button("Create a video", icon=":material/movie_edit:"):
        go(PAGE_CREATE)
else:
    st.query_params["job"] = job_id
    job_panel(job_id)
