"""``python -m backend``: the headless CLI."""

import os
import sys

# Hub access is only for the model manager's explicit downloads; set before huggingface_hub is imported.
NO_TELEMETRY = "HF_HUB_DISABLE_TELEMETRY"
os.environ.setdefault(NO_TELEMETRY, "1")

from backend.cli import main  # noqa: E402

sys.exit(main())
