"""Starting the API server: the access policy for the bound address, then uvicorn on one generator.

Loopback (the default, 127.0.0.1:8502) needs no token. Any other address needs one: it is generated on
first use (``outputs/.studio/api-token``, mode 0600) and the server refuses to start if it cannot be made
or is readable by others. The generator is the studio's own: if the studio already runs the GPU worker
over the same folder, this process only submits and watches, and takes the worker over when it leaves.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass

from backend.api.security import AccessPolicy, is_loopback, load_or_create_token
from backend.paths import RuntimePaths

log = logging.getLogger(__name__)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8502
TAKEOVER_S = 2.0  # how often a client-only server tries to take the worker over


@dataclass(frozen=True)
class ServerOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cors_origins: tuple[str, ...] = ()
    require_token: bool = False  # also on loopback


def access_policy(options: ServerOptions, paths: RuntimePaths) -> AccessPolicy:
    """The policy for ``options``; beyond loopback a token (TokenError if it cannot be had safely)."""
    token = None
    if options.require_token or not is_loopback(options.host):
        token = load_or_create_token(paths.state)
    return AccessPolicy(bind_host=options.host, port=options.port, token=token,
                        cors_origins=tuple(options.cors_origins))


def serve(options: ServerOptions) -> int:
    import uvicorn

    from backend.api.app import create_app
    from backend.jobs.orchestrator import VideoGenerator
    from backend.paths import runtime_paths

    paths = runtime_paths().ensure()
    policy = access_policy(options, paths)  # before anything starts: no token, no server
    generator = VideoGenerator(paths)
    stop = threading.Event()
    if not generator.has_worker:
        print("note: the studio (or another process) runs the GPU worker; this API queues jobs for it and "
              "takes the worker over if it stops", file=sys.stderr)
        threading.Thread(target=_take_over, args=(generator, stop), name="api-takeover", daemon=True).start()
    if policy.token is not None:
        print(f"WARNING: serving on {options.host}:{options.port} — a bearer token is required "
              f"(it is in {paths.state / 'api-token'}); there is no TLS: use a trusted network or an HTTPS proxy.",
              file=sys.stderr)
    shown = f"[{options.host}]" if ":" in options.host else options.host
    print(f"API: http://{shown}:{options.port}/v1   docs: http://{shown}:{options.port}/docs   (Ctrl+C to stop)",
          file=sys.stderr)
    try:
        uvicorn.run(create_app(generator, policy), host=options.host, port=options.port, log_level="warning",
                    server_header=False, proxy_headers=False)
    finally:
        stop.set()
        generator.shutdown()
    return 0


def _take_over(generator, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    while not stop.wait(TAKEOVER_S):
        try:
            if generator.start():
                log.warning("took over the GPU worker from a studio process that stopped")
                return
        except Exception as exc:  # noqa: BLE001 - keep serving; the next attempt may work
            log.warning("could not take the worker over: %s", exc)
