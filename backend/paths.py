"""Where the studio keeps its runtime files.

Everything lives under one root (the repository by default). Tests and users who want their
data elsewhere set ``STUDIO_HOME``; ``STUDIO_MODELS_DIR`` moves only the (large) models folder,
so that a test run in a temporary home can still reuse the cached tiny model set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RuntimePaths:
    root: Path
    models: Path
    outputs: Path
    temp: Path
    uploads: Path

    @property
    def state(self) -> Path:
        """The studio's own bookkeeping (job database, logs), kept beside the outputs it describes."""
        return self.outputs / ".studio"

    @property
    def database(self) -> Path:
        return self.state / "studio.db"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def job_workdir(self, job_id: str) -> Path:
        return self.temp / "jobs" / job_id

    def ensure(self) -> "RuntimePaths":
        for folder in (self.models, self.outputs, self.temp, self.uploads, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def runtime_paths(root: Path | str | None = None) -> RuntimePaths:
    """Paths for ``root`` (or ``$STUDIO_HOME``, or the repository)."""
    base = Path(root or os.environ.get("STUDIO_HOME") or REPO_ROOT).expanduser().resolve()
    models_env = os.environ.get("STUDIO_MODELS_DIR")
    models = Path(models_env).expanduser().resolve() if models_env else base / "models"
    return RuntimePaths(
        root=base,
        models=models,
        outputs=base / "outputs",
        temp=base / "temp",
        uploads=base / "uploads",
    )
