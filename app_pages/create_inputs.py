"""Uploads on the Create page: a start image, a video to extend, a colour LUT.

Each file is checked by content in the backend and stored under uploads/ with a generated name;
the name the browser sent is only ever shown (escaped), never used as a path. A stored upload is
remembered per file so reruns don't store it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import streamlit as st

from app_pages.common import generator, plain, safe_file
from backend.errors import UploadError
from backend.media.uploads import display_name, store_lut

log = logging.getLogger("studio.ui")

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]
VIDEO_TYPES = ["mp4", "mov", "mkv", "webm", "avi"]
IMAGE_LIMIT_MB = 50
VIDEO_LIMIT_MB = 500
LUT_LIMIT_MB = 20


def start_image() -> None:
    from backend.media.uploads import store_image

    uploaded = st.file_uploader("Start image", type=IMAGE_TYPES, key="c_image_upload",
                                max_upload_size=IMAGE_LIMIT_MB,
                                help="PNG, JPEG, WebP or BMP. The video starts from this picture.")
    _take(uploaded, "image", store_image)
    stored = _show("image")
    path = safe_file(stored["path"], generator().paths.uploads) if stored else None
    if path is not None:
        st.image(str(path), width=320)


def source_video() -> None:
    from backend.media.uploads import store_video

    uploaded = st.file_uploader("Video to extend", type=VIDEO_TYPES, key="c_video_upload",
                                max_upload_size=VIDEO_LIMIT_MB, help="The new seconds continue from its last frame.")
    _take(uploaded, "video", store_video)
    _show("video")


def lut() -> None:
    """LUT upload: validated by backend.media.luts, stored as a normalised copy under uploads/luts/."""
    uploaded = st.file_uploader("Colour LUT (.cube)", type=["cube"], key="c_lut_upload",
                                max_upload_size=LUT_LIMIT_MB, help="A 3D LUT applied after the grade.")
    _take(uploaded, "lut", store_lut)
    _show("lut")


def _take(uploaded: Any, kind: str, store: Callable[..., Any]) -> None:
    """Check and store a new upload once; remember its result (or why it was refused)."""
    key = f"c_stored_{kind}"
    previous = st.session_state.get(key)
    if uploaded is None:
        if isinstance(previous, dict) and previous.get("error"):
            st.session_state.pop(key)  # the refused file was taken away: forget the complaint too
        return
    if isinstance(previous, dict) and previous.get("file_id") == uploaded.file_id:
        return  # already handled on an earlier rerun
    # The client's name is only shown, cleaned (last part, no control characters) and escaped.
    upload: dict[str, Any] = {"file_id": uploaded.file_id, "name": display_name(uploaded.name), "path": None,
                              "summary": ""}
    try:
        stored = store(uploaded.getvalue(), uploaded.name, generator().paths.uploads)
    except (UploadError, ValueError) as exc:  # the backend's refusals carry the reason for the user
        upload["error"] = str(exc)
    except OSError as exc:
        log.exception("storing an upload failed")
        upload["error"] = f"The upload could not be saved ({exc.strerror or exc})."
    else:
        upload.update(path=str(stored.path), name=stored.display_name, summary=stored.summary)
    st.session_state[key] = upload


def _show(kind: str) -> dict[str, Any] | None:
    """Show the stored upload (or the refusal); return it when it is usable."""
    stored = st.session_state.get(f"c_stored_{kind}")
    if not isinstance(stored, dict) or stored.get("removed"):
        return None
    if stored.get("error"):
        st.error(plain(f"{stored['name']}: {stored['error']}"))
        return None
    summary = f" — {stored['summary']}" if stored.get("summary") else ""
    cols = st.columns([5, 1])
    cols[0].caption(plain(f"Using {stored['name']}{summary}"))
    if cols[1].button("Remove", key=f"c_remove_{kind}"):
        # Remember the file id, so the same file still sitting in the uploader is not taken again.
        st.session_state[f"c_stored_{kind}"] = {"file_id": stored.get("file_id"), "removed": True}
        st.rerun()
    return stored
