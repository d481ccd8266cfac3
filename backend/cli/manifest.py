"""Batch manifests: a JSON list of job specs, read once for ``generate --manifest`` and ``fleet``.

``load_manifest`` fails for the whole file (unreadable, not JSON, not a non-empty list) with a
``CliError``; each item is then parsed on its own into a ``ManifestItem`` with either a validated spec
or the one-line error that names it (``manifest item 2: ...``). ``generate`` refuses the batch at the
first bad item; the fleet runs the good ones and reports the bad ones. Input files named in a spec
(image, video, LUT) are checked by content and copied into ``uploads/`` like the UI's uploads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backend.cli.common import CliError
from backend.errors import LutError, SpecError, UploadError
from backend.spec import JobSpec


@dataclass(frozen=True)
class ManifestItem:
    index: int
    spec: JobSpec | None  # validated (seed not drawn yet), or None when ``error`` says why not
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.spec is not None


def read_manifest(path: Path) -> list[Any]:
    """The manifest's items, raw; CliError when the file as a whole is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CliError(f"manifest {path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # absurdly deep nesting: json gives up before we could
        raise CliError(f"manifest {path} is nested too deeply to be a list of job specs") from exc
    if not isinstance(data, list) or not data:
        raise CliError("a manifest must be a non-empty JSON list of job specs")
    return data


def parse_item(index: int, item: Any, uploads: Path) -> ManifestItem:
    try:
        spec = JobSpec.from_dict(item)
        if spec.image:
            spec = replace(spec, image=stored_input(Path(spec.image), "image", uploads))
        if spec.video:
            spec = replace(spec, video=stored_input(Path(spec.video), "video", uploads))
        if spec.finish.lut:  # a checked copy in uploads/: the job never reads the user's file again
            lut = stored_input(Path(spec.finish.lut), "lut", uploads)
            spec = replace(spec, finish=replace(spec.finish, lut=lut))
        return ManifestItem(index, spec.validate())
    except (SpecError, CliError) as exc:
        return ManifestItem(index, None, f"manifest item {index}: {exc}")


def load_manifest(path: Path, uploads: Path) -> list[ManifestItem]:
    """Every item of the manifest, each parsed on its own (a bad one does not hide the others)."""
    return [parse_item(index, item, uploads) for index, item in enumerate(read_manifest(path))]


def stored_input(path: Path, kind: str, uploads: Path) -> str:
    """Copy a user's file into uploads/ after checking its content, like the UI does."""
    from backend.media.uploads import store_image, store_lut, store_video

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {kind} {path}: {exc.strerror}") from exc
    store = {"image": store_image, "video": store_video, "lut": store_lut}[kind]
    try:
        return str(store(data, path.name, uploads).path)
    except (UploadError, LutError) as exc:
        raise CliError(f"{kind} {path}: {exc}") from exc
