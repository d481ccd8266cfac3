"""Headless command line on the same orchestrator the studio uses: ``python -m backend ...``.

One module per command; each adds its own parser with ``add_parser(sub)`` and sets ``run`` as the
function that carries it out. Commands import the job layer (and through it torch) only when they
run, so ``--help`` and ``plan`` start in a moment.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from backend.cli import analyze, api, finish, fleet, generate, jobs, logs, models, plan, storyboard
from backend.cli.common import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_FAILED, CliError
from backend.errors import SpecError, StudioError
from backend.library_logging import FILE_ONLY
from backend.paths import runtime_paths

COMMANDS = (generate, jobs, finish, plan, models, api, fleet, storyboard, analyze)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="Local AI video studio (headless).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose, _log_file())
    try:
        return args.run(args)
    except (CliError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StudioError as exc:  # a read-only or full disk, a missing tool: one sentence says what to do
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in the log file
        logging.getLogger(__name__).error("unexpected error", exc_info=exc, extra={FILE_ONLY: True})
        print(f"error: unexpected error ({type(exc).__name__}: {exc}); details are in the studio log",
              file=sys.stderr)
        return EXIT_FAILED


def _log_file() -> Path | None:
    """The studio's log file (``STUDIO_LOG_FILE``, else ``outputs/.studio/logs/studio.log``)."""
    named = os.environ.get("STUDIO_LOG_FILE")
    if named:
        return Path(named)
    try:
        return runtime_paths().state / "logs" / "studio.log"
    except (OSError, ValueError):
        return None
