"""What a loaded pipeline is told besides the prompt: the consistency mode's adapters and the LoRAs.

The memory manager keeps a pipeline loaded across jobs, so each function here puts it into *exactly*
the state one job asks for, whatever the previous job left: ``prepare_consistency`` loads the
IP-Adapter (or unloads it when this job does not use it), ``apply_loras`` sets exactly the requested
LoRA adapters with their weights and removes the others. Both are cheap when nothing changes, so they
run again after an out-of-memory reload too.

Loading adds modules to a pipeline that the memory plan has already placed (offload hooks, groups):
diffusers' LoRA loader re-applies the placement itself; the IP-Adapter loader does not, so
``_placement_kept`` does it the same way around ``load_ip_adapter`` / ``unload_ip_adapter``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from backend.errors import LoraError
from backend.models.ip_adapter import IMAGE_ENCODER, WEIGHTS, ensure_adapter, ip_adapter_for, is_available
from backend.models.loras import (
    ModelLayers,
    check_fits,
    file_sha256,
    lora_layers,
    lora_modules,
    lora_path,
    module_layers,
    no_lora_support,
    require_peft,
)
from backend.models.registry import ModelRef
from backend.paths import runtime_paths
from backend.record import LoraRecord
from backend.spec import JobSpec, LoraChoice
from backend.stages.context import StageContext

log = logging.getLogger(__name__)

IP_ADAPTER_SCALE = 0.6  # image prompt vs text: enough to keep subject and palette, the text still moves the action
ADAPTER_PREFIX = "studio_"  # our LoRA adapter names: studio_<sha256 prefix>


@dataclass(frozen=True)
class Consistency:
    """How the keyframes after the first keep the subject: the mode that runs and why it was chosen."""

    mode: str  # "ip-adapter" | "img2img" | "independent"
    reason: str
    adapter: ModelRef | None = None  # the IP-Adapter preset (mode "ip-adapter")
    scale: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)  # what the record keeps


def choose_consistency(spec: JobSpec, models_root: Path, *, strength: float, count: int = 2) -> Consistency:
    """The mode for ``spec.consistency``; ``auto`` is the IP-Adapter when its weights are here, else img2img.

    One keyframe has nothing to keep consistent with: it is drawn from text, and no adapter is loaded.
    """
    asked = spec.consistency
    adapter = ip_adapter_for(spec.model_set)
    if count < 2:
        reason = "a single keyframe: nothing later to keep consistent"
        return Consistency("independent", reason, detail={"reason": reason})
    if asked == "auto":
        if is_available(adapter, models_root):
            asked = "ip-adapter"
            reason = ("auto: the tiny set's IP-Adapter twin (random weights)" if adapter.is_tiny
                      else "auto: the IP-Adapter weights are downloaded")
        else:
            asked, reason = "img2img", f"auto: {adapter.key} is not downloaded, so img2img from the previous keyframe"
    else:
        reason = "asked for"
    if asked == "ip-adapter":
        source = adapter.repo_id or f"tiny twin in models/tiny/{adapter.tiny_name} (random weights)"
        return Consistency("ip-adapter", reason, adapter, IP_ADAPTER_SCALE, {
            "reason": reason, "adapter": adapter.key, "repo": source, "revision": adapter.revision,
            "weights": WEIGHTS, "scale": IP_ADAPTER_SCALE, "reference_keyframe": 0, "seed": "shared"})
    if asked == "img2img":
        return Consistency("img2img", reason, detail={"reason": reason, "strength": strength,
                                                      "from": "the previous keyframe"})
    return Consistency("independent", reason, detail={"reason": reason, "seed": "shared"})


def models_root_of(ctx: StageContext) -> Path:
    """Where the models are: the memory manager's folder (the pipelines come from there), else the default."""
    root = getattr(ctx.memory, "models_root", None)  # MemoryManager has it; the narrow protocol does not promise it
    return Path(root) if root is not None else runtime_paths().models


# --- the IP-Adapter --------------------------------------------------------------------------------------

def prepare_consistency(pipe: Any, consistency: Consistency, models_root: Path) -> None:
    """Load the IP-Adapter for mode ``ip-adapter`` (scale 0 until a reference is given); unload it otherwise."""
    loaded = getattr(pipe, "_studio_ip_adapter", None)
    wanted = consistency.adapter.key if consistency.mode == "ip-adapter" and consistency.adapter else None
    if loaded == wanted:
        if wanted is not None:
            pipe.set_ip_adapter_scale(0.0)
        return
    if loaded is not None:
        _placement_kept(pipe, pipe.unload_ip_adapter)
        pipe._studio_ip_adapter = None
        log.info("unloaded the IP-Adapter %s", loaded)
    if wanted is not None:
        folder = ensure_adapter(consistency.adapter, models_root)
        subfolder, weight_name = WEIGHTS.split("/")
        _placement_kept(pipe, lambda: pipe.load_ip_adapter(str(folder), subfolder=subfolder, weight_name=weight_name,
                                                           image_encoder_folder=IMAGE_ENCODER))
        pipe._studio_ip_adapter = wanted
        pipe.set_ip_adapter_scale(0.0)
        log.info("loaded the IP-Adapter %s from %s", wanted, folder)


def _placement_kept(pipe: Any, change: Callable[[], Any]) -> None:
    """Run ``change`` (which adds or removes modules) with the memory plan's offloading re-applied after it."""
    import torch
    from diffusers.hooks import group_offloading as groups
    from diffusers.loaders.lora_base import _func_optionally_disable_offloading

    model_offload, sequential, grouped = _func_optionally_disable_offloading(pipe)
    change()
    if model_offload:
        pipe.enable_model_cpu_offload()
    elif sequential:
        pipe.enable_sequential_cpu_offload()
    elif grouped:  # regroup what changed; a new component (the image encoder) gets the same grouping
        parts = [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
        config = next(groups._get_top_level_group_offload_hook(c).config for c in parts
                      if groups._is_group_offload_enabled(c))
        for component in parts:
            if groups._is_group_offload_enabled(component):
                groups._maybe_remove_and_reapply_group_offloading(component)
            else:
                groups._apply_group_offloading(component, config)


# --- LoRAs ---------------------------------------------------------------------------------------------

def lora_records(choices: tuple[LoraChoice, ...], models_root: Path, target: str) -> list[LoraRecord]:
    """What ``apply_loras`` records, without a pipeline (every keyframe was kept: nothing is loaded)."""
    return [LoraRecord(c.file, file_sha256(lora_path(models_root, c.file)), c.weight, target)
            for c in choices if c.target == target]


def apply_loras(pipe: Any, choices: tuple[LoraChoice, ...], models_root: Path, target: str, *,
                ref: ModelRef | None = None) -> list[LoraRecord]:
    """Set exactly the ``target`` LoRAs of ``choices`` on ``pipe`` with their weights; remove any others.

    Idempotent on a cached pipeline: a file already loaded (same content: the adapter is named by its
    hash) is not loaded again; none chosen leaves no adapter at all. LoraError (one sentence) for a
    pipeline without LoRA support or a file that does not fit it.
    """
    picked = [choice for choice in choices if choice.target == target]
    label = ref.label if ref is not None else type(pipe).__name__
    can_load = hasattr(pipe, "load_lora_weights")
    if not picked:
        if can_load and _loaded_adapters(pipe):
            pipe.unload_lora_weights()
        return []
    if not can_load or (ref is not None and not lora_modules(ref.pipeline_class)):
        raise no_lora_support(ref) if ref is not None else LoraError(f"{label} cannot take LoRAs.")
    require_peft()
    records, names = [], []
    for choice in picked:
        path = lora_path(models_root, choice.file)
        digest = file_sha256(path)
        records.append(LoraRecord(choice.file, digest, choice.weight, target))
        names.append(f"{ADAPTER_PREFIX}{digest[:16]}")
    loaded = _loaded_adapters(pipe)
    stale = sorted(loaded - set(names))
    if stale:
        pipe.delete_adapters(stale)
    for choice, name, record in zip(picked, names, records):
        if name in loaded:
            continue
        path = lora_path(models_root, choice.file)
        check_fits(choice.file, lora_layers(path), pipeline_layers(pipe, label))
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        if name not in _loaded_adapters(pipe):
            raise LoraError(f"'{choice.file}' put no layer into {label}: its tensor names are in a format diffusers "
                            "does not map onto this model.")
        log.info("loaded LoRA %s (%s…) as %s", choice.file, record.sha256[:12], name)
    pipe.set_adapters(names, adapter_weights=[choice.weight for choice in picked])
    return records


def _loaded_adapters(pipe: Any) -> set[str]:
    """The adapters on the pipeline's LoRA-loadable parts (read directly: works without peft installed too)."""
    names: set[str] = set()
    for component in getattr(pipe, "_lora_loadable_modules", ()):
        names.update(getattr(getattr(pipe, component, None), "peft_config", None) or {})
    return names


def pipeline_layers(pipe: Any, label: str) -> ModelLayers:
    """The LoRA-loadable components of a loaded pipeline, measured on its modules (like ``model_layers``)."""
    components = {}
    for component in getattr(pipe, "_lora_loadable_modules", ()):
        model = getattr(pipe, component, None)
        if model is not None and hasattr(model, "named_modules"):
            components[component] = module_layers(model)
    return ModelLayers(label, components)
