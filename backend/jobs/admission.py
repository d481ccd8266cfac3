"""What a spec must pass before it may join the queue: validation, a concrete seed, inputs that exist.

Everything here fails in a second with a ``SpecError`` naming the field, instead of minutes into a
job: the uploaded image or video is still there, a colour LUT parses (its error names the line), each
LoRA is a LoRA for the model it will change (safetensors header against the model's config, no weights
loaded), and an explicitly chosen IP-Adapter is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from backend.errors import LoraError, LutError, ModelNotAvailable, SpecError
from backend.media.luts import load_cube
from backend.models import ip_adapter, loras
from backend.paths import runtime_paths
from backend.spec import JobSpec


def admit(spec: JobSpec, models_root: Path | None = None) -> JobSpec:
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
    root = models_root if models_root is not None else runtime_paths().models
    try:
        ip_adapter.check_consistency(spec.consistency, spec.model_set, root)
    except ModelNotAvailable as exc:
        raise SpecError("consistency", str(exc)) from exc
    try:
        loras.check_spec(spec, root)
    except LoraError as exc:
        raise SpecError("loras", str(exc)) from exc
    return spec
