"""Keep the ML libraries' own chatter (tqdm bars, advisory warnings) out of the user's terminal.

Progress reaches the user through our callbacks and the job log; the libraries' warnings still
reach the studio log at ERROR. Called once by the worker before it loads any model, so importing
the backend stays light.
"""

from __future__ import annotations

import logging
import os

_done = False
# ``log.error(..., extra={FILE_ONLY: True})``: for the log file only; the terminal already got one line.
FILE_ONLY = "file_only"
NO_PROGRESS_BARS = "HF_HUB_DISABLE_PROGRESS_BARS"


def quiet_ml_libraries() -> None:
    global _done
    if _done:
        return
    _done = True
    os.environ.setdefault(NO_PROGRESS_BARS, "1")
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for module in (diffusers_logging, transformers_logging):
        module.set_verbosity_error()
        module.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
