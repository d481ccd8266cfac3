"""Who may talk to the API: loopback by default, a bearer token beyond it, Host and Origin checked.

- **Token.** Bound beyond loopback, the server requires ``Authorization: Bearer <token>``. The token is
  generated on first use and kept in ``outputs/.studio/api-token`` with mode 0600; a token file anyone
  else can read is refused (the server will not start with it).
- **Host.** A request whose ``Host`` is not a name the server is reachable under (loopback names, plus
  the address it was bound to) gets 403: a web page that resolves its own domain to 127.0.0.1 (DNS
  rebinding) cannot use the API. Bound to ``0.0.0.0`` any name is allowed, and the token is what protects it.
- **Origin.** A browser request from another web page carries its ``Origin``; unless that origin is the
  server itself or one configured for CORS, it gets 403 (a page cannot POST a job to 127.0.0.1).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from backend.errors import StudioError

TOKEN_FILE = "api-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class TokenError(StudioError):
    """The API token cannot be created or is unsafe to use."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(state: Path) -> str:
    """The API token under ``state`` (outputs/.studio/), generated with mode 0600 on first use."""
    path = state / TOKEN_FILE
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        return _read_token(path)
    except OSError as exc:
        raise TokenError(f"cannot create the API token file {path}: {exc.strerror}") from exc
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise TokenError(f"cannot read the API token file {path}: {exc.strerror}") from exc
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"the API token file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise TokenError(f"the API token file {path} can be read by others (mode "
                             f"{stat.S_IMODE(info.st_mode):o}); run `chmod 600 {path}` or delete it for a new one")
        token = handle.read().strip()
    if len(token) < 16:
        raise TokenError(f"the API token file {path} holds no usable token; delete it for a new one")
    return token


@dataclass(frozen=True)
class AccessPolicy:
    """What the bound address allows: host names, browser origins, and the token (None = not required)."""

    bind_host: str = "127.0.0.1"
    port: int = 8502
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.bind_host)

    @property
    def any_host(self) -> bool:
        return self.bind_host.strip("[]") in WILDCARD_HOSTS

    def host_allowed(self, header: str | None) -> bool:
        if not header:
            return False
        name = _host_name(header)
        if name is None:
            return False
        if self.any_host:
            return True
        allowed = {*LOOPBACK_NAMES, self.bind_host.strip("[]").lower(), *(h.lower() for h in self.extra_hosts)}
        return name in allowed

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True  # not a cross-site browser request (curl, scripts, same-origin GET)
        if origin in self.cors_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and the like
        return bool(host_header) and parts.netloc.lower() == host_header.lower() and self.host_allowed(parts.netloc)

    def token_ok(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())


def _host_name(header: str) -> str | None:
    """The name part of a Host header (``[::1]:8502`` → ``::1``), lower-cased; None if malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else None
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class AccessMiddleware:
    """ASGI middleware applying an ``AccessPolicy`` to every HTTP request (docs included)."""

    def __init__(self, app: Any, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = headers.get("host")
        if not self.policy.host_allowed(host):
            await _refuse(send, 403, "This server does not answer to that Host name.")
            return
        if not self.policy.origin_allowed(headers.get("origin"), host):
            await _refuse(send, 403, "Requests from other web pages are not allowed.")
            return
        if scope.get("method") != "OPTIONS" and not self.policy.token_ok(headers.get("authorization")):
            await _refuse(send, 401, "A bearer token is required (see outputs/.studio/api-token on the server).",
                          [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str, extra: list | None = None) -> None:
    import json

    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
