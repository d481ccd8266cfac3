"""``python -m backend.models.<kind> download [KEY]``: the one command line the single-purpose fetchers share
(finishing weights, the planner LLM, the IP-Adapter), until the model manager downloads every kind."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from backend.errors import DownloadError
from backend.models.registry import ModelRef


def run_download_command(module: str, presets: dict[str, ModelRef], fetch: Callable[[ModelRef, Path], Path],
                         argv: list[str] | None = None) -> int:
    """Fetch the preset named on the command line (the first one when only one is offered) into the models folder."""
    args = sys.argv[1:] if argv is None else argv
    keys = [key for key, ref in presets.items() if not ref.is_tiny]
    chosen = args[1] if len(args) == 2 else (keys[0] if len(args) == 1 and len(keys) == 1 else None)
    if not args or args[0] != "download" or len(args) > 2 or chosen not in presets:
        print(f"usage: python -m {module} download {{{','.join(keys)}}}", file=sys.stderr)
        return 2
    from backend.paths import runtime_paths

    try:
        print(fetch(presets[chosen], runtime_paths().models))
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
