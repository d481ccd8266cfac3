"""Retry an out-of-memory VAE decode with a lighter decode, inside the same pipeline call.

VAE decode is the classic late OOM: the denoising loop has finished and its latents are in hand. While
a ``DecodeGuard`` is installed, ``pipe.vae.decode`` catches that OOM, frees memory, switches to VAE
tiling/slicing (or smaller frame chunks for VAEs without them, like SVD's temporal decoder) and decodes
the same latents again — the pipeline carries on as if nothing happened, without re-sampling.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from backend.memory.oom import error_summary, free_memory, is_oom_error
from backend.memory.plans import MemoryPlan, apply_component_settings
from backend.record import StepDown

log = logging.getLogger(__name__)


class DecodeGuard:
    """Context manager wrapping ``pipe.vae.decode``; ``plan`` is the plan in force afterwards."""

    def __init__(
        self, pipe: Any, plan: MemoryPlan, steps: list[StepDown], *, on_relief: Callable[[MemoryPlan], None] | None = None
    ) -> None:
        self.pipe = pipe
        self.plan = plan
        self.steps = steps
        self._on_relief = on_relief
        self._vae: Any = None
        self._original: Callable[..., Any] | None = None

    def __enter__(self) -> "DecodeGuard":
        vae = getattr(self.pipe, "vae", None)
        if vae is not None and callable(getattr(vae, "decode", None)):
            self._vae, self._original = vae, vae.decode
            vae.decode = self._decode  # an instance attribute: diffusers' offload hooks stay inside
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._vae is not None:
            del self._vae.decode  # back to the class method
            self._vae = self._original = None

    def _decode(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return self._decode_in_chunks(args, kwargs)
            except Exception as exc:  # noqa: BLE001 - only OOMs are handled; the rest re-raise
                if not is_oom_error(exc) or self.plan.with_tiled_decode() is None:
                    raise
                failure = error_summary(exc)
            # Outside the except block: its traceback would pin the decoder's tensors.
            free_memory()
            self._relieve(failure)

    def _relieve(self, failure: str) -> None:
        lighter = self.plan.with_tiled_decode()
        assert lighter is not None  # checked before leaving the except block
        apply_component_settings(self.pipe, lighter)
        log.warning("VAE decode of %s ran out of memory (%s); retrying with %s without re-sampling",
                    self.plan.model, failure, lighter.describe())
        self.steps.append(StepDown(
            model=self.plan.model, kind="decode_retry", error=failure,
            action=f"retried the VAE decode with {lighter.describe()}, keeping the sampled latents",
            from_plan=self.plan.to_dict(), to_plan=lighter.to_dict(),
        ))
        self.plan = lighter
        if self._on_relief is not None:
            self._on_relief(lighter)

    def _decode_in_chunks(self, args: tuple, kwargs: dict) -> Any:
        """Decode at most ``plan.decode_chunk_size`` frames at a time when the VAE cannot slice itself."""
        assert self._original is not None
        latents = args[0] if args else kwargs.get("z")
        chunk = self.plan.decode_chunk_size
        if hasattr(self._vae, "use_slicing") or latents is None or latents.shape[0] <= chunk:
            return self._original(*args, **kwargs)
        import torch

        rest = dict(kwargs)
        rest.pop("z", None)
        parts = []
        for start in range(0, latents.shape[0], chunk):
            piece = latents[start:start + chunk]
            if "num_frames" in rest:  # SVD's temporal decoder mixes exactly these frames
                rest["num_frames"] = piece.shape[0]
            parts.append(self._original(piece, *args[1:], **rest))
        first = parts[0]
        if isinstance(first, tuple):
            return (torch.cat([p[0] for p in parts]),) + tuple(first[1:])
        return type(first)(sample=torch.cat([p.sample for p in parts]))
