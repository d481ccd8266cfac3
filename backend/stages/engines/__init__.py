"""Motion engines: one module per family, each a real diffusers pipeline behind ``MotionEngine``."""

from __future__ import annotations

from backend.models.registry import ModelRef
from backend.stages.engines.base import Conditioning, MotionEngine
from backend.stages.engines.first_frame import CogVideoXEngine, SvdEngine
from backend.stages.engines.ltx import LtxEngine
from backend.stages.engines.skyreels import SkyReelsEngine
from backend.stages.engines.wan import WanEngine

ENGINES: dict[str, MotionEngine] = {
    "ltx": LtxEngine(), "wan": WanEngine(), "skyreels": SkyReelsEngine(),
    "svd": SvdEngine(), "cogvideox": CogVideoXEngine(),
}
# What each pipeline class is driven by (the low-memory substitute is an LTX model whatever was asked for).
_BY_PIPELINE = {
    "LTXConditionPipeline": "ltx", "WanImageToVideoPipeline": "wan",
    "SkyReelsV2DiffusionForcingImageToVideoPipeline": "skyreels",
    "StableVideoDiffusionPipeline": "svd", "CogVideoXImageToVideoPipeline": "cogvideox",
}


def engine_for(ref: ModelRef) -> MotionEngine:
    """The engine that drives ``ref``."""
    return ENGINES[_BY_PIPELINE[ref.pipeline_class]]


__all__ = ["ENGINES", "Conditioning", "MotionEngine", "engine_for"]
