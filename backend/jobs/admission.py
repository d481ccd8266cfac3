"""What a spec must pass before it may join the queue: validation, a concrete seed, inputs that exist.

Everything here fails in a second with a ``SpecError`` naming the field, instead of minutes into a
job: the uploaded image or video is still there, and a colour LUT parses (its error names the line).
"""

from __future__ import annotations

from pathlib import Path

from backend.errors import LutError, SpecError
from backend.media.luts import load_cube
from backend.spec import JobSpec


def admit(spec: JobSpec) -> JobSpec:
    """The spec as it will be stored: validated, with its seed drawn; raises SpecError otherwise."""
    spec = spec.validate().with_seed()
    for name in ("image", "video"):
        value = getattr(spec, name)
        if value and not Path(value).is_file():
            raise SpecError(name, f"The input {name} file does not exist any more; upload it again.")
    if spec.finish.lut:
        try:
            load_cube(Path(spec.finish.lut))
        except LutError as exc:
            raise SpecError("finish.lut", str(exc)) from exc
    return spec
