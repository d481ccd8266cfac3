"""``api``: serve the HTTP API (``./launch.sh api``) on the same job queue as the studio."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    api = sub.add_parser("api", help="serve the HTTP API (default http://127.0.0.1:8502, docs at /docs)")
    api.add_argument("--host", default="127.0.0.1", help="address to bind; beyond loopback a token is required")
    api.add_argument("--port", type=int, default=8502)
    api.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                     help="allow this browser origin (e.g. http://localhost:3000); repeatable; none by default")
    api.add_argument("--require-token", action="store_true", help="require the bearer token on loopback too")
    api.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from backend.api.server import ServerOptions, serve
    from backend.cli.common import CliError

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be between 1 and 65535, not {args.port}")
    return serve(ServerOptions(host=args.host, port=args.port, cors_origins=tuple(args.cors_origin),
                               require_token=args.require_token))
