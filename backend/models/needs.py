"""Every model the studio can fetch, whether it is on disk, and which ones a job needs that are not.

Four kinds of preset are fetched the same way (``downloads.download``), each checked on disk by what its
loader needs:

- ``pipeline``: a diffusers folder (``registry.MODELS``), complete once ``store``'s marker is written;
- ``weights``: one weights file (``registry.FINISHING_MODELS``: the upscaler, RIFE), what
  ``finishing.weights_file`` finds;
- ``planner``: the storyboard LLM's folder (``llm_planner.PLANNER_MODELS``), what ``model_folder`` loads;
- ``ip-adapter``: the adapter weights and its image encoder (``ip_adapter.IP_ADAPTERS``).

A download of ours that has not finished (cancelled, interrupted) leaves ``DOWNLOADING`` in the folder's
hub cache until the completeness marker is written, so a half-fetched folder of any kind reads "partial"
even where its files alone would satisfy the loader. ``missing_models`` says which models one job will
load that are not on this machine; the tiny test set builds itself and is never missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import ModelNotAvailable
from backend.models import finishing, ip_adapter, llm_planner, store
from backend.models.registry import (
    FINISHING_MODELS,
    MODEL_SETS,
    MODELS,
    ModelRef,
    finishing_model_for,
    keyframe_model_for,
    motion_model_for,
)
from backend.models.store import ModelStatus

if TYPE_CHECKING:
    from backend.spec import JobSpec

PIPELINE, WEIGHTS, PLANNER, IP_ADAPTER = "pipeline", "weights", "planner", "ip-adapter"
KINDS = (PIPELINE, WEIGHTS, PLANNER, IP_ADAPTER)
DOWNLOADING = Path(store.HUB_CACHE_DIR, "studio-download-unfinished")  # removed when the marker is written
DOWNLOAD_COMMAND = "python -m backend models download"


def catalog() -> dict[str, tuple[str, ModelRef]]:
    """Every preset by key: (kind, ref); diffusers pipelines first, as ``models list`` shows them."""
    groups = ((PIPELINE, MODELS), (WEIGHTS, FINISHING_MODELS), (PLANNER, llm_planner.PLANNER_MODELS),
              (IP_ADAPTER, ip_adapter.IP_ADAPTERS))
    return {key: (kind, ref) for kind, presets in groups for key, ref in presets.items()}


def kind_of(ref: ModelRef) -> str:
    entry = catalog().get(ref.key)
    return entry[0] if entry else PIPELINE


def find_preset(name: str) -> ModelRef:
    """A preset of any kind by key, for the CLI and the pages; ValueError lists the valid names."""
    try:
        return catalog()[name][1]
    except KeyError:
        raise ValueError(f"Unknown model '{name}'. Known models: {', '.join(catalog())}.") from None


def model_folder(ref: ModelRef, models_root: Path) -> Path:
    """Where ``ref``'s files live: ``<root>/<key>``, or ``<root>/tiny/<name>`` for a test model."""
    return Path(models_root) / "tiny" / str(ref.tiny_name) if ref.is_tiny else store.model_folder(ref, models_root)


# --- on disk ------------------------------------------------------------------------------------------


def loadable(ref: ModelRef, models_root: Path) -> bool:
    """Whether ``ref``'s loader would find its files (real presets; a pipeline only needs model_index.json here)."""
    kind = kind_of(ref)
    if kind == PIPELINE:
        return (store.model_folder(ref, models_root) / "model_index.json").is_file()
    if kind == IP_ADAPTER:
        return ip_adapter.is_available(ref, models_root)
    try:
        (finishing.weights_file if kind == WEIGHTS else llm_planner.model_folder)(ref, models_root)
    except ModelNotAvailable:
        return False
    return True


def model_status(ref: ModelRef, models_root: Path) -> ModelStatus:
    """``store.status`` for a preset of any kind: downloaded, linked, partial, missing, built or not built."""
    kind = kind_of(ref)
    if kind == PIPELINE:
        return store.status(ref, models_root)
    folder = model_folder(ref, models_root)
    size = store.bytes_on_disk(folder)
    if ref.is_tiny:
        from backend.models.tiny import marked_complete

        built = marked_complete(folder, _tiny_version(kind))
        return ModelStatus(ref.key, "built" if built else "not built", folder if built else None, size)
    if loadable(ref, models_root) and not (folder / DOWNLOADING).exists():
        return ModelStatus(ref.key, "downloaded", folder, size)
    return ModelStatus(ref.key, "partial" if size else "missing", folder if size else None, size)


def verify_model(ref: ModelRef, models_root: Path, *, checksums: bool = False) -> list[str]:
    """``store.verify`` for a preset of any kind: each problem a sentence, none when it is usable."""
    kind = kind_of(ref)
    if kind == PIPELINE:
        return store.verify(ref, models_root, checksums=checksums)
    folder = model_folder(ref, models_root)
    state = model_status(ref, models_root).state
    if ref.is_tiny:
        if state != "built":
            return [f"{ref.key} is not built yet; it is built on first use."]
        return list(store.damaged_files(folder, strict=True).values())
    unpinned = finishing.unpinned_file(ref, models_root) if kind == WEIGHTS else None
    if unpinned:
        return [f"{unpinned[1]} Run `{DOWNLOAD_COMMAND} {ref.key}` to fetch the published file again."]
    if state != "downloaded":
        if not ref.repo_id:
            return [no_download(ref, models_root)]
        where = "partly downloaded" if state == "partial" else "not downloaded"
        return [f"{ref.key} is {where}: run `{DOWNLOAD_COMMAND} {ref.key}` (it resumes)."]
    marker = store.read_marker(folder) or {}
    present = store.folder_files(folder)
    problems = [f"{name} is missing." for name in dict(marker.get("files", {})) if name not in present]
    return problems + list(store.damaged_files(folder, checksums=checksums).values())


def no_download(ref: ModelRef, models_root: Path) -> str:
    """Why a preset without a Hub repository cannot be fetched, and what to do instead."""
    instead = {"IFNet": ", or use --interpolation flow", "spandrel": ", or use --upscale lanczos"}
    return (f"{ref.label or ref.key} has no public download: put {ref.allow_patterns[0]} into "
            f"{model_folder(ref, models_root)}{instead.get(ref.pipeline_class, '')}")


def _tiny_version(kind: str) -> str:
    if kind == PLANNER:
        from backend.models.tiny_llm import FORMAT_VERSION

        return FORMAT_VERSION
    return ip_adapter.FORMAT_VERSION if kind == IP_ADAPTER else finishing.FORMAT_VERSION


# --- what one job needs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingModel:
    ref: ModelRef
    why: str  # one line: what is missing and how big it is
    downloadable: bool  # the download manager can fetch it
    field: str = "model_set"  # the spec field that asked for it (the SpecError names it)


def uses_downloads(spec: "JobSpec") -> bool:
    """Whether any model of the spec's set must be downloaded (the tiny set builds itself)."""
    return any(not MODELS[key].is_tiny for key in MODEL_SETS.get(spec.model_set, {}).values())


def needed_models(spec: "JobSpec", plan: Any = None) -> list[tuple[ModelRef, str]]:
    """Every model ``spec`` loads, with the spec field that chose it.

    ``plan`` is the pre-flight (``backend.memory.preflight``'s ``Preflight`` or its ``to_dict()``): its stages
    name the keyframe and motion models that will really run, after any fallback, and skip a keyframe
    stage the job does not need. Without it, the requested models are named (for ``engine="auto"`` the
    motion model depends on the machine, so none is).
    """
    if plan is not None:
        named = [(str(_get(s, "model")), "engine" if _get(s, "stage") == "motion" else "preset")
                 for s in (plan.get("stages", []) if isinstance(plan, Mapping) else getattr(plan, "stages", ()))
                 if _get(s, "level") != "skipped" and _get(s, "model") in MODELS]
        needed = [(MODELS[key], field) for key, field in dict(named).items()]
    else:
        needed = [(keyframe_model_for(spec.model_set, spec.preset), "preset")]
        if spec.engine != "auto":
            needed.append((motion_model_for(spec.model_set, spec.engine, spec.preset), "engine"))
    if spec.finish.upscale == "model":
        needed.append((finishing_model_for(spec.model_set, "upscaler"), "finish.upscale"))
    if spec.finish.interpolation == "rife":
        needed.append((finishing_model_for(spec.model_set, "rife"), "finish.interpolation"))
    if spec.planner == "llm":
        needed.append((llm_planner.planner_model_for(spec.model_set), "planner"))
    if spec.consistency == "ip-adapter":  # "auto" falls back to img2img by itself: never missing
        needed.append((ip_adapter.ip_adapter_for(spec.model_set), "consistency"))
    return needed


def missing_models(spec: "JobSpec", models_root: Path, plan: Any = None) -> list[MissingModel]:
    """The models ``spec`` will load (see ``needed_models``) that are not on this machine, one line each."""
    missing = []
    for ref, field in needed_models(spec, plan):
        if ref.is_tiny:
            continue
        state = model_status(ref, models_root)
        if state.ready:
            continue
        if not ref.repo_id:
            missing.append(MissingModel(ref, no_download(ref, models_root), downloadable=False, field=field))
            continue
        where = "partly downloaded" if state.state == "partial" else "not downloaded"
        gated = f" (gated: accept its licence at {ref.hub_url} first)" if ref.gated else ""
        missing.append(MissingModel(ref, f"{ref.label or ref.key} ({ref.key}): {ref.size_gb:.1f} GB, {where}{gated}",
                                    downloadable=True, field=field))
    return missing


def missing_sentence(missing: list[MissingModel]) -> str:
    """One sentence naming every missing model and what fetches it (the admission's SpecError)."""
    fetch = [m.ref for m in missing if m.downloadable]
    parts = []
    if fetch:
        names = " and ".join(", ".join(f"{r.key} ({r.size_gb:.1f} GB)" for r in fetch).rsplit(", ", 1))
        parts.append(f"This job needs models that are not on this machine: {names}; fetch them with the Download "
                     f"button on the Create page or `{DOWNLOAD_COMMAND} {' '.join(r.key for r in fetch)}`")
        parts += [f"{r.key} is gated: accept its licence at {r.hub_url} first" for r in fetch if r.gated]
    parts += [m.why for m in missing if not m.downloadable]
    return "; ".join(parts) + "."


def _get(stage: Any, name: str) -> Any:
    return stage.get(name) if isinstance(stage, Mapping) else getattr(stage, name, None)
