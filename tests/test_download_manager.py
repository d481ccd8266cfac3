"""Downloads run in the backend's download manager; the UI only starts them and polls their task."""

from __future__ import annotations

import threading
import time

import pytest

from backend.errors import DownloadError
from backend.models import download_manager
from backend.models.download_manager import DownloadManager
from backend.models.registry import MODELS

pytestmark = pytest.mark.unit


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_download_reports_bytes_is_joined_not_doubled_and_ends_done(tmp_path, monkeypatch) -> None:
    release, calls = threading.Event(), []

    def fake_download(ref, root, *, progress, **_):
        calls.append((ref.key, root))
        progress(100, 1000)
        release.wait(10)
        progress(1000, 1000)
        return root / ref.key

    monkeypatch.setattr(download_manager, "download", fake_download)
    manager, ref = DownloadManager(tmp_path), MODELS["sdxl-turbo"]
    task = manager.start(ref)
    wait_until(lambda: task.done == 100)
    assert task.running and task.total == 1000 and manager.task(ref) is task
    assert manager.start(ref) is task  # a second click (or tab) joins the running download
    release.set()
    wait_until(lambda: not task.running)
    assert task.state == "done" and task.done == 1000 and calls == [("sdxl-turbo", tmp_path)]


@pytest.mark.parametrize("error, shown", [
    (DownloadError("Cannot reach the Hugging Face Hub"), "Cannot reach the Hugging Face Hub"),
    (KeyError("boom"), "Unexpected error (KeyError"),
])
def test_a_failed_download_keeps_its_reason_and_can_be_started_again(tmp_path, monkeypatch, error, shown) -> None:
    def failing(ref, root, *, progress, **_):
        raise error

    monkeypatch.setattr(download_manager, "download", failing)
    manager, ref = DownloadManager(tmp_path), MODELS["svd-xt"]
    task = manager.start(ref)
    wait_until(lambda: not task.running)
    assert task.state == "failed" and task.error.startswith(shown)
    assert manager.start(ref) is not task  # a new attempt, not the old failure
