"""Named kill points for the fault-injection tests: ``STUDIO_KILL_AT=<name>`` kills the process there.

A crash is only interesting at the moments between two writes; each such moment has a name, and the
tests start a real studio process with the variable set to see what a kill there leaves behind. Unset
(always, for users), a kill point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "STUDIO_KILL_AT"
POINTS = ("after-publish",)  # the video is in outputs/; its checkpoint, record and sidecar are not yet


def kill_point(name: str) -> None:
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
