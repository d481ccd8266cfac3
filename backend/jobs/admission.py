"""What a spec must pass before it may join the queue: validation, a concrete seed, inputs that exist.

Everything here fails in a second with a ``SpecError`` naming the field, instead of minutes into a
job: the uploaded image or video is still there, a colour LUT parses (its error names the line), each
LoRA is a LoRA for the model it will change (safetensors header against the model's config, no weights
loaded), and every real model the job will load is on disk: one SpecError names all that are missing and
what fetches them (``backend.models.needs``), instead of a failure at the first stage that loads one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.errors import LoraError, LutError, ModelNotAvailable, SpecError
from backend.media.luts import load_cube
from backend.models import ip_adapter, loras, needs
from backend.paths import runtime_paths
from backend.spec import JobSpec


def admit(spec: JobSpec, models_root: Path | None = None, *, hardware: Any = None) -> JobSpec:
    """The spec as it will be stored: validated, with its seed drawn; raises SpecError otherwise.

    With ``models_root`` (the studio that will run the job) every model the job needs must be on disk;
    without it (the fleet driver, whose workers may hold models this machine lacks) only an explicitly
    chosen IP-Adapter is checked here. ``hardware`` (a ``HardwareProfile``) decides which motion model
    the planner takes; detected when not given.
    """
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
    if models_root is not None:
        check_models(spec, models_root, hardware)
    try:
        ip_adapter.check_consistency(spec.consistency, spec.model_set, root)
    except ModelNotAvailable as exc:
        raise SpecError("consistency", str(exc)) from exc
    try:
        loras.check_spec(spec, root)
    except LoraError as exc:
        raise SpecError("loras", str(exc)) from exc
    return spec


def check_models(spec: JobSpec, models_root: Path, hardware: Any = None) -> None:
    """One SpecError naming every real model ``spec`` would load that is not on disk (the tiny set never is)."""
    if not needs.uses_downloads(spec):
        return
    from backend.memory import detect_hardware, preflight

    plan = preflight(spec, hardware if hardware is not None else detect_hardware())  # the models that will run
    missing = needs.missing_models(spec, models_root, plan)
    if missing:
        raise SpecError(missing[0].field, needs.missing_sentence(missing))
