"""Headless command line on the same orchestrator the studio uses: ``python -m backend ...``.

One module per command; each adds its own parser with ``add_parser(sub)`` and sets ``run`` as the
function that carries it out. Commands import the job layer (and through it torch) only when they
run, so ``--help`` and ``plan`` start in a moment.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from backend.cli import finish, generate, jobs, models, plan
from backend.cli.common import EXIT_BAD_INPUT, CliError
from backend.errors import SpecError

COMMANDS = (generate, jobs, finish, plan, models)


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
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (CliError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
