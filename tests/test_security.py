"""Security defaults: loopback only, XSRF and Host checks on, no shell, no raw HTML, no file escapes.

The server test starts Streamlit with the same command line ``launch.sh`` uses (its default host,
a free port) and asks the OS which addresses the process listens on. The code scan walks the AST
of every product file: no ``shell=True``, no ``os.system``/``os.popen``, no raw HTML from anything
but a literal string. ``safe_files.resolve_inside`` is what the UI serves files through.
"""

from __future__ import annotations

import ast
import base64
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from backend.errors import UnsafePath
from backend.media.safe_files import is_inside, read_inside, resolve_inside

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "::1"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}


# --- the server ----------------------------------------------------------------------------------
def launch_default_host() -> str:
    """The host launch.sh serves on when given no --host and no STUDIO_HOST."""
    match = re.search(r"host=\$\{STUDIO_HOST:-([^}]+)\}", (REPO / "launch.sh").read_text())
    assert match, "launch.sh no longer sets host=${STUDIO_HOST:-...}"
    return match.group(1)


def launch_command(host: str, port: int) -> list[str]:
    """launch.sh's exec line: "$PY" -m streamlit run app.py --server.address "$host" --server.port "$port"."""
    line = next(l for l in (REPO / "launch.sh").read_text().splitlines() if "-m streamlit run app.py" in l)
    assert '--server.address "$host" --server.port "$port"' in line, line
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", host, "--server.port", str(port)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(pid: int) -> set[tuple[str, int]]:
    import psutil

    process = psutil.Process(pid)
    found = set()
    for proc in (process, *process.children(recursive=True)):
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:  # launch.sh's short-lived helpers (setup checks) come and go
            continue
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN:
                found.add((conn.laddr.ip, conn.laddr.port))
    return found


def websocket_status(port: int, host_header: str) -> str:
    """The status line the server answers a WebSocket upgrade with, for a given Host header."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Origin: http://{host_header}\r\n\r\n").encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def upload_without_xsrf_token(port: int, origin: str) -> int:
    import http.client

    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nx\r\n--B--\r\n'
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("PUT", "/_stcore/upload_file/session/file", body=body,
                 headers={"Content-Type": "multipart/form-data; boundary=B", "Origin": origin})
    return conn.getresponse().status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The studio as launch.sh starts it, in a temporary home; yields (pid, port)."""
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = dict(os.environ, STUDIO_HOME=str(home), STUDIO_LOG_FILE=str(home / "studio.log"))
    # Where the project's own environment exists (CI, a user's checkout) run launch.sh itself; a
    # development shell without .venv runs the same command line launch.sh execs.
    real_launcher = (REPO / ".venv" / "bin" / "python").exists()
    # Bare ./launch.sh, as a user types it (the port through STUDIO_PORT, which launch.sh documents).
    command = ["bash", "launch.sh"] if real_launcher else launch_command(launch_default_host(), port)
    env["STUDIO_PORT"] = str(port)
    printed = home / "launch-output.txt"
    with open(printed, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not any(p == port for _, p in listening(proc.pid)):
            assert proc.poll() is None, f"streamlit exited with {proc.returncode}"
            assert time.monotonic() < deadline, "streamlit did not start listening"
            time.sleep(0.2)
        if real_launcher:
            assert f"Studio: http://127.0.0.1:{port}" in printed.read_text(errors="replace")
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_launch_defaults_to_loopback_and_warns_before_exposing():
    script = (REPO / "launch.sh").read_text()
    assert launch_default_host() == "127.0.0.1"
    assert "WARNING: serving on" in script  # --host 0.0.0.0 prints the warning before serving


@pytest.mark.e2e
def test_the_server_listens_on_loopback_only(server):
    pid, port = server
    addresses = listening(pid)
    assert addresses and {ip for ip, _ in addresses} <= LOOPBACK, addresses


@pytest.mark.e2e
def test_the_server_refuses_foreign_host_headers_and_uploads_without_xsrf_token(server):
    _, port = server
    assert "101" in websocket_status(port, f"127.0.0.1:{port}")
    assert "403" in websocket_status(port, "evil.example.com")  # DNS rebinding: refused
    for origin in ("null", "http://evil.example.com"):
        assert upload_without_xsrf_token(port, origin) == 403


def test_streamlit_config_is_loopback_with_xsrf_and_a_host_allow_list():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server_cfg = config["server"]
    assert server_cfg["address"] == "127.0.0.1"
    assert server_cfg["enableXsrfProtection"] is True
    assert server_cfg["allowedHosts"] and set(server_cfg["allowedHosts"]) <= LOOPBACK_NAMES
    assert config["browser"]["gatherUsageStats"] is False


# --- the code -------------------------------------------------------------------------------------
def product_files() -> list[Path]:
    files = [REPO / "app.py", REPO / "test_system.py", REPO / "setup.py"]
    for folder in ("backend", "app_pages"):
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if f.is_file()]


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _literal_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def unsafe_calls(source: str) -> list[str]:
    """Calls that could hand user text to a shell or render it as HTML."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        shell = keywords.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"line {node.lineno}: {name}(shell=...)")
        builtin = isinstance(node.func, ast.Name) and name in ("eval", "exec")  # not model.eval()
        if builtin or name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            found.append(f"line {node.lineno}: {name}()")
        html = keywords.get("unsafe_allow_html")
        if html is not None and not (isinstance(html, ast.Constant) and html.value is False):
            if not (node.args and _literal_text(node.args[0])):
                found.append(f"line {node.lineno}: {name}(..., unsafe_allow_html) with non-literal text")
        if name.endswith(("st.html", "components.html", "components.v1.html")) and not (
                node.args and _literal_text(node.args[0])):
            found.append(f"line {node.lineno}: {name}() with non-literal text")
    return found


def test_no_shell_and_no_raw_html_with_user_text_in_product_code():
    problems = {str(f.relative_to(REPO)): unsafe_calls(f.read_text(encoding="utf-8")) for f in product_files()}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len(problems) > 30  # the scan really saw the code base


def test_the_scan_catches_what_it_should():
    bad = ("import subprocess, os, streamlit as st\nsubprocess.run(cmd, shell=True)\nos.system(x)\n"
           "st.markdown(prompt, unsafe_allow_html=True)\nst.html(user)\nsubprocess.run(c, shell=flag)\neval(t)\n")
    assert len(unsafe_calls(bad)) == 6
    ok = ("import subprocess, streamlit as st\nsubprocess.run(['ffmpeg'], shell=False)\n"
          "st.markdown('<br>', unsafe_allow_html=True)\nst.markdown(text)\nmodel.eval()\n")
    assert unsafe_calls(ok) == []


# --- serving files ---------------------------------------------------------------------------------
@pytest.fixture
def outputs(tmp_path) -> Path:
    folder = tmp_path / "outputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"mp4")
    (folder / "sub" / "clip.mp4").write_bytes(b"clip")
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "link-out").symlink_to(tmp_path / "secret.txt")
    (folder / "dir-out").symlink_to(tmp_path, target_is_directory=True)
    (folder / "link-in").symlink_to(folder / "video.mp4")
    (folder / "loop").symlink_to(folder / "loop")
    return folder


@pytest.mark.parametrize("path", [
    "../secret.txt", "sub/../../secret.txt", "/etc/passwd", "link-out", "dir-out/secret.txt", "loop",
    "video.mp4\x00.png", "..\\secret.txt", "C:\\Windows\\win.ini", "", "missing.mp4", ".", "sub/..",
])
def test_resolve_inside_refuses_what_lies_outside(outputs, path):
    with pytest.raises(UnsafePath):
        resolve_inside(path, outputs)
    assert not is_inside(path, outputs)


def test_resolve_inside_accepts_files_inside(outputs):
    assert resolve_inside("video.mp4", outputs) == (outputs / "video.mp4").resolve()
    assert resolve_inside(outputs / "sub" / "clip.mp4", outputs) == (outputs / "sub" / "clip.mp4").resolve()
    assert resolve_inside("sub/../video.mp4", outputs).name == "video.mp4"
    assert resolve_inside("link-in", outputs).name == "video.mp4"  # a symlink that stays inside is fine
    assert resolve_inside(outputs / "absent.mp4", outputs, must_exist=False).name == "absent.mp4"
    assert read_inside("sub/clip.mp4", outputs) == b"clip"


def test_read_inside_refuses_special_files_and_oversized_reads(outputs):
    os.mkfifo(outputs / "pipe")
    with pytest.raises(UnsafePath, match="regular file"):
        read_inside("pipe", outputs)  # must not block waiting for a writer
    with pytest.raises(UnsafePath, match="limit"):
        read_inside("video.mp4", outputs, max_bytes=2)
