"""Small image helpers shared by stages (resizing policy lives here, in one place)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def fit_fill(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover ``size`` and centre-crop the overflow: no stretching, no bars."""
    width, height = size
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.Resampling.LANCZOS)
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def fit_pad(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to fit inside ``size`` and centre it on black: the whole picture, its aspect kept."""
    width, height = size
    image = image.convert("RGB")
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", size)
    canvas.paste(image.resize(inner, Image.Resampling.LANCZOS), ((width - inner[0]) // 2, (height - inner[1]) // 2))
    return canvas


def crossfade(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * a + weight * b`` in float, back to uint8."""
    mixed = a.astype(np.float32) * (1.0 - weight) + b.astype(np.float32) * weight
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
