"""AppTest: the Models page cancels a download (a resumable partial stays) and stores a Hub token for gated models
without keeping it in the session. No network: the download manager gets a fake hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_download_kinds import FakeHub, token_store, wait_until  # noqa: F401 - token_store is a fixture
from ui_support import install_generator, new_app, open_page, run, studio_home, texts  # noqa: F401 - fixtures

from backend.models import ip_adapter, needs
from backend.models.download_manager import CANCELLED, DownloadManager

pytestmark = pytest.mark.ui


def test_a_download_started_on_the_models_page_can_be_cancelled_and_resumed(
        studio_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - fixture
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    gen = install_generator(start_worker=False)
    hub = FakeHub(block_on=f"{ip_adapter.IMAGE_ENCODER}/model.safetensors")
    gen.downloads = DownloadManager(gen.paths.models, fetch=hub)
    at = open_page(run(new_app()), "app_pages/models.py")
    assert "Gated: accept its licence at https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt" \
        in texts(at)
    at.button(key="m_download_ip-adapter-sdxl").click()
    run(at)
    wait_until(hub.blocking.is_set)
    run(at)
    at.button(key="m_cancel_ip-adapter-sdxl").click()
    run(at)
    ref = needs.find_preset("ip-adapter-sdxl")
    task = gen.downloads.task(ref)
    assert task.wait(10) and task.state == CANCELLED
    run(at)
    assert "Download cancelled" in texts(at) and at.button(key="m_download_ip-adapter-sdxl").label == "Resume download"
    assert needs.model_status(ref, gen.paths.models).state == "partial"


def test_the_token_goes_to_the_hub_store_and_leaves_the_session_with_the_click(
        studio_home: Path, token_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - fixtures
    import huggingface_hub.hf_api

    monkeypatch.setattr(huggingface_hub.hf_api, "whoami",
                        lambda token, **_: {"name": "me", "auth": {"accessToken": {"displayName": "studio"}}})
    install_generator(start_worker=False)
    secret = "hf_" + "s" * 34
    at = open_page(run(new_app()), "app_pages/models.py")
    assert "No token is stored yet." in texts(at)
    at.text_input(key="m_hf_token").input(secret)
    next(b for b in at.button if b.label == "Store the token").click()
    run(at)
    assert "Token stored" in texts(at) and "A token is available" in texts(at)
    assert (token_store / "token").read_text().strip() == secret
    assert secret not in repr(at.session_state) and at.text_input(key="m_hf_token").value == ""
    assert secret not in texts(at)
