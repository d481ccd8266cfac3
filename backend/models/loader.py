"""The one way a pipeline is loaded: ``from_pretrained`` on a folder, for real and tiny models alike.

Real models are loaded from their folder under ``models/`` (downloaded by the model manager, or a
folder the user pointed a preset at); the tiny test set is built there on first use. Either way the
same ``from_pretrained`` call runs, so the tests exercise the loading code users run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from backend.errors import ModelNotAvailable
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)


def resolve_model_folder(ref: ModelRef, models_root: Path) -> Path:
    """The folder holding ``ref``'s files, building the tiny test models on demand."""
    if ref.is_tiny:
        from backend.models.tiny import ensure_tiny_model

        return ensure_tiny_model(ref.tiny_name, models_root)
    from backend.models import store as model_store

    folder = model_store.local_folder(ref, models_root)
    if folder is None:
        raise ModelNotAvailable(
            f"{ref.label or ref.key} is not downloaded yet. Download it on the Models page or run "
            f"`python -m backend models download {ref.key}`."
        )
    return folder


def load_pipeline(ref: ModelRef, models_root: Path, *, dtype: Any) -> Any:
    """Load ``ref``'s diffusers pipeline from disk in ``dtype`` (placement is the memory plan's job)."""
    import diffusers

    folder = resolve_model_folder(ref, models_root)
    pipeline_cls = getattr(diffusers, ref.pipeline_class)
    log.info("loading %s (%s) from %s as %s", ref.key, ref.pipeline_class, folder, dtype)
    # safetensors only: a pickled .bin in a linked folder could run code when loaded.
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
    if ref.pipeline_class.startswith("StableDiffusionXL"):
        kwargs["add_watermarker"] = False  # invisible-watermark is not a dependency; and it alters frames
    if ref.variant and any(folder.glob(f"*/*.{ref.variant}.safetensors")):
        # Downloads fetch only the variant's files; a folder the user linked may hold the plain ones.
        kwargs["variant"] = ref.variant
    try:
        pipe = pipeline_cls.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailable(
            f"The files of {ref.label or ref.key} in {folder} are incomplete or damaged ({exc}). "
            f"Verify or re-download it on the Models page (`python -m backend models verify {ref.key}`)."
        ) from exc
    pipe.set_progress_bar_config(disable=True)  # progress goes through our callbacks, not tqdm on stderr
    return pipe
