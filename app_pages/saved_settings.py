"""Saved Create settings: named presets, and the last-used settings that come back after a restart.

One JSON file under the studio's state folder (``outputs/.studio/create-settings.json``), written
atomically (a temporary file renamed over it). A file that cannot be read is ignored with a warning
on the Create page, never a crash; it is replaced the next time settings are saved. Every value read
back is checked (``create_state.clean_values``) before it reaches a widget.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages.common import plain
from app_pages.create_state import clean_values, form_values, set_form_values
from backend.paths import runtime_paths

log = logging.getLogger("studio.ui")

FILE_NAME = "create-settings.json"
VERSION = 1
MAX_NAME = 60
MAX_PRESETS = 100
PROBLEM = "c_settings_problem"
_lock = threading.Lock()  # two tabs saving at once: one read-modify-write at a time


def settings_file() -> Path:
    return runtime_paths().state / FILE_NAME


def _read() -> dict[str, Any]:
    """The file's contents; an unreadable file is reported once per session and treated as empty."""
    path = settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("presets", {}), dict):
            raise ValueError("not a settings object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        log.warning("ignoring the unreadable saved settings %s: %s", path, exc)
        st.session_state[PROBLEM] = (f"The saved Create settings could not be read ({exc}); the defaults are "
                                     "used, and the file is replaced when settings are next saved.")
        return {}
    return data


def _write(data: dict[str, Any]) -> None:
    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".create-settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**data, "version": VERSION}, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _update(change) -> bool:  # change: Callable[[dict], None]
    """Read, change and write the file; False (logged, and said on the page) when it cannot be written."""
    with _lock:
        data = _read()
        change(data)
        try:
            _write(data)
        except OSError as exc:
            log.warning("cannot save the Create settings: %s", exc)
            st.session_state[PROBLEM] = f"The settings could not be saved ({exc.strerror or exc})."
            return False
    return True


def presets() -> dict[str, dict[str, Any]]:
    found = _read().get("presets") or {}
    return {str(name): clean_values(values) for name, values in found.items() if isinstance(values, dict)}


def last_used() -> dict[str, Any]:
    """The settings of the last job this studio queued from the Create page (checked), or nothing."""
    return clean_values(_read().get("last"))


def save_last(values: dict[str, Any]) -> None:
    _update(lambda data: data.__setitem__("last", values))


def save_preset(name: str, values: dict[str, Any]) -> None:
    def change(data: dict[str, Any]) -> None:
        stored = data["presets"] = dict(data.get("presets") or {})
        if name not in stored and len(stored) >= MAX_PRESETS:
            raise ValueError(f"At most {MAX_PRESETS} presets can be saved: delete one first.")
        stored[name] = values

    _update(change)


def delete_preset(name: str) -> None:
    _update(lambda data: (data.get("presets") or {}).pop(name, None))


# --- the section on the Create page -----------------------------------------------------------------
def _on_save() -> None:
    name = " ".join(str(st.session_state.get("cs_name") or "").split())[:MAX_NAME]
    if not name:
        st.session_state["cs_said"] = ("warning", "Give the settings a name first.")
        return
    try:
        save_preset(name, form_values(with_prompt=False))
    except ValueError as exc:
        st.session_state["cs_said"] = ("warning", str(exc))
        return
    st.session_state["cs_pick"] = name
    st.session_state["cs_said"] = ("success", f"Saved as “{name}”.")


def _on_load() -> None:
    name = st.session_state.get("cs_pick")
    values = presets().get(name) if name else None
    if values is None:
        st.session_state["cs_said"] = ("warning", "Choose saved settings to load.")
        return
    set_form_values(values)
    st.session_state["cs_said"] = ("success", f"Loaded “{name}”.")


def _on_delete() -> None:
    name = st.session_state.get("cs_pick")
    if name:
        delete_preset(name)
        st.session_state["cs_pick"] = None
        st.session_state["cs_said"] = ("success", f"Deleted “{name}”.")


def saved_settings_section() -> None:
    """Name the current settings, load or delete saved ones; say when the file could not be read."""
    problem = st.session_state.pop(PROBLEM, None)
    if problem:
        st.warning(plain(problem))
    with st.expander("Saved settings", key="c_exp_saved"):
        names = sorted(presets())
        if st.session_state.get("cs_pick") not in names:
            st.session_state["cs_pick"] = None
        cols = st.columns([3, 1, 1], vertical_alignment="bottom")
        cols[0].selectbox("Saved settings", names, key="cs_pick", index=None, placeholder="choose saved settings",
                          help="Everything on this page except the prompt, the enhanced prompt and uploads.")
        cols[1].button("Load", key="cs_load", on_click=_on_load, disabled=not names)
        cols[2].button("Delete", key="cs_delete", on_click=_on_delete, disabled=not names)
        cols = st.columns([4, 1], vertical_alignment="bottom")
        cols[0].text_input("Save the current settings as", key="cs_name", max_chars=MAX_NAME,
                           placeholder="e.g. vertical cinematic")
        cols[1].button("Save", key="cs_save", on_click=_on_save)
        st.caption("The settings of your last Generate come back by themselves after a restart.")
        said = st.session_state.pop("cs_said", None)
        if said:
            (st.success if said[0] == "success" else st.warning)(plain(said[1]))
