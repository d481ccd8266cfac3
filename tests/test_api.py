"""The HTTP API over the shared VideoGenerator: jobs, SSE progress, Range downloads, uploads, and its
access checks (token beyond loopback, Host and Origin against DNS rebinding and other web pages)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api import files
from backend.api.app import create_app
from backend.api.security import AccessPolicy, TokenError, load_or_create_token
from backend.api.server import ServerOptions, access_policy
from backend.jobs.orchestrator import VideoGenerator
from backend.paths import runtime_paths

pytestmark = [pytest.mark.tiny, pytest.mark.ffmpeg]

REPO = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8502"
TINY = {"prompt": "a calm lake", "model_set": "tiny", "duration": 1, "fps": 8, "width": 256, "height": 144}


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> VideoGenerator:
    gen = VideoGenerator(runtime_paths(tmp_path_factory.mktemp("api-home")))
    yield gen
    gen.shutdown()


@pytest.fixture(scope="module")
def client(generator) -> TestClient:
    with TestClient(create_app(generator), base_url=BASE) as test_client:
        yield test_client


def events_of(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    seen = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=300) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                seen.append((event, json.loads(line[6:])))
    return seen


def test_create_stream_until_done_then_download_with_a_range(client):
    created = client.post("/v1/jobs", json={**TINY, "seed": 5})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] in ("queued", "running") and job["spec"]["seed"] == 5

    seen = events_of(client, job["id"])
    kinds = [kind for kind, _ in seen]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and "progress" in kinds
    progress = [data for kind, data in seen if kind == "progress"]
    assert {"stage", "step", "fraction", "eta_seconds", "preview"} <= set(progress[0])
    assert {p["stage"] for p in progress} & {"keyframes", "motion", "finish"}
    assert any(p["preview"] for p in progress)
    end = seen[-1][1]
    assert end["state"] == "done" and end["video"] == f"/v1/jobs/{job['id']}/video"

    whole = client.get(end["video"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"
    part = client.get(end["video"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"

    record = client.get(f"/v1/jobs/{job['id']}/record").json()
    assert record["id"] == job["id"] and record["spec"]["seed"] == 5 and "stages" in record
    preview = client.get(progress[-1]["preview"] or f"/v1/jobs/{job['id']}/previews/0")
    assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"  # JPEG
    listed = client.get("/v1/jobs").json()
    assert job["id"] in [j["id"] for j in listed]
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "done"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409  # nothing to cancel


def test_cancel_then_resume_finishes_the_job(client, generator):
    job_id = client.post("/v1/jobs", json={**TINY, "seed": 6, "steps": 12, "duration": 2}).json()["id"]
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert generator.wait(job_id, timeout=300).state == "cancelled"
    assert client.get(f"/v1/jobs/{job_id}/video").status_code == 404
    resumed = client.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] in ("queued", "running")  # the worker may be quick
    assert events_of(client, job_id)[-1][1]["state"] == "done"
    assert client.post(f"/v1/jobs/{job_id}/resume").status_code == 409  # done: nothing to resume


@pytest.mark.parametrize("body, field", [
    ({**TINY, "fps": "8"}, "fps"),  # FastAPI's type check
    ({**TINY, "wobble": 1}, "wobble"),  # unknown setting
    ({**TINY, "duration": -1}, "duration"),  # our SpecError (range)
    ({**TINY, "prompt": "   "}, "prompt"),
    ({**TINY, "finish": {"grade": "sepia"}}, "grade"),
    ({**TINY, "mode": "i2v", "image": "/etc/passwd"}, "image"),  # inputs only from /v1/uploads
    ({"model_set": "tiny"}, "prompt"),
])
@pytest.mark.unit
def test_bad_specs_get_422_naming_the_field(client, body, field):
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(field in item["loc"] for item in detail), detail
    assert all(item["msg"] for item in detail)


@pytest.mark.unit
def test_unknown_jobs_are_404_and_docs_models_system_answer(client):
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get("/v1/jobs/nope/events").status_code == 404
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/video", "/v1/uploads/{kind}"} <= set(paths)
    models = client.get("/v1/models").json()
    assert any(m["key"] == "tiny-sdxl" for m in models["models"])
    system = client.get("/v1/system").json()
    assert {"version", "hardware", "worker", "queue"} <= set(system)


@pytest.mark.unit
def test_uploads_are_checked_by_content_limited_and_named_by_hash(client, generator, sample_png, monkeypatch):
    data = sample_png.read_bytes()
    stored = client.post("/v1/uploads/image", params={"name": "../../evil\x00.png"}, content=data)
    assert stored.status_code == 201, stored.text
    path = Path(stored.json()["path"])
    assert path.parent == generator.paths.uploads / "images" and "evil" not in path.name
    assert stored.json()["name"] == "evil.png"
    assert client.post("/v1/uploads/image", content=b"#EXTM3U\nfile:///etc/passwd").status_code == 422
    assert client.post("/v1/uploads/video", content=b"#EXTM3U\nfile:///etc/passwd").status_code == 422
    assert client.post("/v1/uploads/script", content=data).status_code == 404
    monkeypatch.setattr(files.uploads, "MAX_UPLOAD_BYTES", 100)
    assert client.post("/v1/uploads/image", content=data).status_code == 413
    # An uploaded image is accepted as a job input (submission only checks it; no need to run it here).
    spec = {**TINY, "mode": "i2v", "image": str(path), "engine": "svd"}
    created = client.post("/v1/jobs", json=spec)
    assert created.status_code == 201, created.text
    client.post(f"/v1/jobs/{created.json()['id']}/cancel")


@pytest.mark.unit
def test_beyond_loopback_the_token_is_required(generator):
    policy = AccessPolicy(bind_host="0.0.0.0", token="s3cret-token-of-enough-length")
    with TestClient(create_app(generator, policy), base_url="http://192.168.1.5:8502") as remote:
        assert remote.get("/v1/system").status_code == 401
        assert remote.get("/v1/system", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert remote.get("/docs").status_code == 401
        ok = remote.get("/v1/system", headers={"Authorization": "Bearer s3cret-token-of-enough-length"})
        assert ok.status_code == 200


@pytest.mark.unit
def test_foreign_host_and_origin_are_refused(client, generator):
    assert client.get("/v1/system", headers={"Host": "evil.example.com"}).status_code == 403
    assert client.get("/v1/system", headers={"Host": "evil.example.com:8502"}).status_code == 403
    assert client.get("/v1/system", headers={"Host": "localhost:8502"}).status_code == 200
    assert client.get("/v1/system", headers={"Host": "[::1]:8502"}).status_code == 200
    for origin in ("http://evil.example.com", "null", "http://127.0.0.1:9999"):
        assert client.post("/v1/jobs", json=TINY, headers={"Origin": origin}).status_code == 403
    assert client.get("/v1/system", headers={"Origin": BASE}).status_code == 200
    assert "access-control-allow-origin" not in client.get("/v1/system", headers={"Origin": BASE}).headers
    named = AccessPolicy(bind_host="192.168.1.5", token="x" * 20)
    assert named.host_allowed("192.168.1.5:8502") and not named.host_allowed("evil.example.com")
    cors = AccessPolicy(cors_origins=("http://localhost:3000",))
    with TestClient(create_app(generator, cors), base_url=BASE) as browser:
        answer = browser.get("/v1/system", headers={"Origin": "http://localhost:3000"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://localhost:3000"


@pytest.mark.unit
def test_the_token_is_made_once_with_0600_and_a_readable_one_is_refused(tmp_path):
    paths = runtime_paths(tmp_path).ensure()
    assert access_policy(ServerOptions(), paths).token is None  # loopback: no token
    policy = access_policy(ServerOptions(host="0.0.0.0"), paths)
    token_file = paths.state / "api-token"
    assert policy.token and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert load_or_create_token(paths.state) == policy.token
    token_file.chmod(0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        access_policy(ServerOptions(host="0.0.0.0"), paths)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e
def test_the_server_refuses_to_start_beyond_loopback_with_an_unsafe_token(tmp_path):
    paths = runtime_paths(tmp_path).ensure()
    (paths.state / "api-token").write_text("x" * 40)
    (paths.state / "api-token").chmod(0o644)
    env = dict(os.environ, STUDIO_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "backend", "api", "--host", "0.0.0.0", "--port",
                             str(free_port())], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert result.returncode == 1 and "chmod 600" in result.stderr and "Traceback" not in result.stderr


def test_review_over_http_read_redraw_animate(client, generator):
    job_id = client.post("/v1/jobs", json={**TINY, "seed": 9, "review": True, "engine": "ltx", "keyframes": 2,
                                           "duration": 2}).json()["id"]
    assert generator.wait(job_id, timeout=300).state == "awaiting_review"
    assert client.post(f"/v1/jobs/{job_id}/resume").status_code == 409  # a storyboard goes on with animate
    board = client.get(f"/v1/jobs/{job_id}/storyboard").json()
    assert len(board["frames"]) == 2 and board["approved"] is False
    first = client.get(board["keyframe_images"][1])
    assert first.status_code == 200 and first.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/v1/jobs/{job_id}/storyboard/keyframes/3").status_code == 404
    redraw = client.post(f"/v1/jobs/{job_id}/storyboard/regenerate",
                         json={"keyframe": 2, "prompt": "the lake at dusk", "new_seed": True})
    assert redraw.status_code == 200 and redraw.json()["state"] in ("queued", "running")
    assert generator.wait(job_id, timeout=300).state == "awaiting_review"
    assert client.get(f"/v1/jobs/{job_id}/storyboard").json()["frames"][1]["prompt"] == "the lake at dusk"
    assert client.post(f"/v1/jobs/{job_id}/animate").status_code == 200
    assert generator.wait(job_id, timeout=300).state == "done"
    gone = client.get(f"/v1/jobs/{job_id}/storyboard")
    assert gone.status_code == 409 and "not waiting for review" in gone.json()["detail"]
