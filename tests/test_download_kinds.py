"""One download path for every kind of model, cancel that leaves a resumable partial, gated models and the token.

No network: a fake ``snapshot_download`` writes the files the preset's ``allow_patterns`` select and drives the
``tqdm_class`` bars the way huggingface_hub does (a half-fetched file lives under the hub's cache until it is
whole, then is renamed into place).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from huggingface_hub import errors

from backend.cli import models as cli_models
from backend.cli.models import add_parser as add_models_parser
from backend.cli.models import run as run_models
from backend.errors import DownloadError, ModelNotAvailable
from backend.models import downloads, finishing, ip_adapter, llm_planner, needs, store
from backend.models.download_manager import CANCELLED, DONE, DownloadManager, combined
from backend.models.registry import FINISHING_MODELS

pytestmark = pytest.mark.unit

_HEADER = json.dumps({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
SAFETENSORS = len(_HEADER).to_bytes(8, "little") + _HEADER + b"\0" * 4  # one float: a header that parses
REPO_FILES = {  # what each repository holds (more than the presets fetch)
    "amd/realesrgan-x4plus": {"RealESRGAN_x4plus.pth": b"p" * 300, "RealESRGAN_x2plus.pth": b"q" * 300},
    "lividtm/RIFE": {"rife49.pth": b"r" * 200, "rife47.pth": b"s" * 200},
    "Qwen/Qwen2.5-1.5B-Instruct": {"config.json": b"{}", "tokenizer_config.json": b"{}",
                                   "model.safetensors": SAFETENSORS, "vocab.json": b"{}", "merges.txt": b"m",
                                   "LICENSE": b"Apache", "README.md": b"# card"},
    "h94/IP-Adapter": {ip_adapter.WEIGHTS: SAFETENSORS, f"{ip_adapter.IMAGE_ENCODER}/config.json": b"{}",
                       f"{ip_adapter.IMAGE_ENCODER}/model.safetensors": SAFETENSORS,
                       "models/ip-adapter_sd15.safetensors": SAFETENSORS},
}


class FakeHub:
    """``snapshot_download`` without the network; ``block_on`` stops in that file, streaming until cancelled."""

    def __init__(self, block_on: str | None = None, on_block: Any = None) -> None:
        self.block_on, self.on_block = block_on, on_block
        self.fetched: list[str] = []
        self.blocking = threading.Event()

    def __call__(self, **kw: Any) -> str:
        folder, bar = Path(kw["local_dir"]), kw["tqdm_class"]
        files = {name: data for name, data in REPO_FILES[kw["repo_id"]].items()
                 if any(fnmatch.fnmatch(name, p) for p in kw["allow_patterns"])}
        disk = bar(desc="Reconstructing (incomplete total...)", total=sum(map(len, files.values())), unit="B")
        for name, data in files.items():
            if (folder / name).is_file():  # finished earlier: kept and skipped (the resume)
                disk.update(len(data))
                continue
            if name == self.block_on:
                partial = folder / ".cache" / "huggingface" / "download" / f"{name}.incomplete"
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(data[:4])
                self.blocking.set()
                if self.on_block:
                    self.on_block()
                try:
                    while True:  # one chunk after another, as http_get does, until the progress bar raises
                        disk.update(0)
                        time.sleep(0.01)
                finally:
                    partial.unlink()  # huggingface_hub 2.x drops the temporary file of a failed transfer
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
            self.fetched.append(name)
            disk.update(len(data))
        return str(folder)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL_S", 0.0)


@pytest.fixture(autouse=True)
def pinned_to_the_fake_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The single-file presets are pinned to the published files' SHA-256: here, to the fake hub's bytes."""
    for ref in list(FINISHING_MODELS.values()):
        if ref.sha256:
            data = REPO_FILES[ref.repo_id][ref.allow_patterns[0]]
            monkeypatch.setitem(FINISHING_MODELS, ref.key, replace(ref, sha256=hashlib.sha256(data).hexdigest()))


@pytest.mark.parametrize("key", ["realesrgan-x4plus", "qwen2.5-1.5b-instruct", "ip-adapter-sdxl"])
def test_every_kind_downloads_through_the_one_path_with_one_byte_count(tmp_path, key) -> None:
    ref, hub, seen = needs.find_preset(key), FakeHub(), []
    folder = downloads.download(ref, tmp_path, fetch=hub, progress=lambda done, total: seen.append(done))
    assert folder == tmp_path / key and (folder / store.COMPLETE_MARKER).is_file()
    assert sorted(hub.fetched) == sorted(store.read_marker(folder)["files"])  # only the preset's files
    assert seen[-1] == sum(len(REPO_FILES[ref.repo_id][name]) for name in hub.fetched)
    assert needs.model_status(ref, tmp_path).state == "downloaded" and needs.verify_model(ref, tmp_path) == []
    loaders = {"realesrgan-x4plus": lambda: finishing.weights_file(ref, tmp_path).parent,
               "qwen2.5-1.5b-instruct": lambda: llm_planner.model_folder(ref, tmp_path),
               "ip-adapter-sdxl": lambda: ip_adapter.ensure_adapter(ref, tmp_path)}
    assert loaders[key]() == folder  # where each loader looks
    (folder / hub.fetched[-1]).write_bytes(b"cut")
    assert needs.verify_model(ref, tmp_path)  # the marker's sizes catch a damaged file


def test_a_preset_without_a_repository_says_where_its_file_goes(tmp_path) -> None:
    no_repo = replace(needs.find_preset("rife-4.9"), repo_id=None)
    with pytest.raises(DownloadError, match=r"no public download: put rife49\.pth into .*interpolation flow"):
        downloads.download(no_repo, tmp_path, fetch=FakeHub())


def test_a_weights_file_that_is_not_the_published_one_is_found_and_fetched_again(tmp_path) -> None:
    ref, hub = needs.find_preset("rife-4.9"), FakeHub()
    downloads.download(ref, tmp_path, fetch=hub)
    path = tmp_path / "rife-4.9" / "rife49.pth"
    path.write_bytes(b"x" + path.read_bytes()[1:])  # one byte flipped: same size, so only the pin sees it
    (problem,) = needs.verify_model(ref, tmp_path)
    assert "rife49.pth is not the published RIFE 4.9 (frame interpolation) file" in problem
    with pytest.raises(ModelNotAvailable, match=r"not the published .*models download rife-4\.9"):
        finishing.weights_file(ref, tmp_path)
    downloads.download(ref, tmp_path, fetch=hub)
    assert hub.fetched == ["rife49.pth", "rife49.pth"] and needs.verify_model(ref, tmp_path) == []
    changed = replace(ref, sha256="0" * 64)  # the repository now serves something else: refused, said once
    with pytest.raises(DownloadError, match=r"not the published .*repository changed"):
        downloads.download(changed, tmp_path, fetch=hub)
    assert not path.exists()


# --- cancel ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, blocked", [
    ("ip-adapter-sdxl", f"{ip_adapter.IMAGE_ENCODER}/model.safetensors"),
    ("qwen2.5-1.5b-instruct", "merges.txt"),  # after every file its loader checks: the files alone would load
])
def test_cancel_leaves_a_resumable_partial_never_a_complete_looking_folder(tmp_path, key, blocked) -> None:
    ref, hub = needs.find_preset(key), FakeHub(block_on=blocked)
    manager = DownloadManager(tmp_path, fetch=hub)
    task = manager.start(ref)
    wait_until(hub.blocking.is_set)
    assert manager.task(ref) is task and task.running and manager.running() == [task]
    assert manager.cancel(ref) and task.state == "cancelling"
    assert task.wait(10) and task.state == CANCELLED and not task.error
    folder = tmp_path / key
    assert not (folder / store.COMPLETE_MARKER).exists() and store.folder_files(folder)  # finished files kept
    assert needs.model_status(ref, tmp_path).state == "partial" and "partly downloaded" in needs.verify_model(
        ref, tmp_path)[0]
    assert not manager.cancel(ref)  # nothing runs any more

    kept = set(hub.fetched)
    again = FakeHub()
    task = DownloadManager(tmp_path, fetch=again).start(ref)
    assert task.wait(10) and task.state == DONE, task.error
    assert kept.isdisjoint(again.fetched) and needs.model_status(ref, tmp_path).state == "downloaded"


def test_a_transfer_that_ignores_the_cancel_still_gets_no_marker(tmp_path) -> None:
    ref, cancel = needs.find_preset("realesrgan-x4plus"), threading.Event()

    def deaf(**kw: Any) -> str:  # finishes its file without ever asking the progress bar
        cancel.set()
        (Path(kw["local_dir"]) / "RealESRGAN_x4plus.pth").write_bytes(b"p" * 300)
        return kw["local_dir"]

    with pytest.raises(downloads.DownloadCancelled, match="resumes"):
        downloads.download(ref, tmp_path, fetch=deaf, cancel=cancel)
    assert needs.model_status(ref, tmp_path).state == "partial"


def test_a_partial_folder_the_hub_hands_back_offline_is_not_marked_complete(tmp_path, monkeypatch) -> None:
    ref = needs.find_preset("sdxl-base")
    (tmp_path / ref.key).mkdir()
    (tmp_path / ref.key / "model_index.json").write_text("{}")  # the first file of an interrupted download
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: SimpleNamespace(free=1024**4))
    with pytest.raises(DownloadError, match="Cannot reach the Hugging Face Hub"):
        downloads.download(ref, tmp_path)  # the real snapshot_download, HF_HUB_OFFLINE=1: returns local_dir as is
    assert needs.model_status(ref, tmp_path).state == "partial"


def test_combined_progress_counts_every_model_of_a_job() -> None:
    from backend.models.download_manager import DownloadTask

    tasks = [DownloadTask("a", total=100, done=100), DownloadTask("b", total=300, done=50)]
    assert combined(tasks) == (150, 400) and combined([DownloadTask("c", total=None)]) == (0, None)


# --- the command line -----------------------------------------------------------------------------------

def models(root: Path, *argv: str, fetch: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="backend")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    return run_models(parser.parse_args(["models", *argv, "--models-dir", str(root)]), fetch=fetch)


def test_the_cli_lists_downloads_and_verifies_every_kind(tmp_path, capsys) -> None:
    assert models(tmp_path, "list", "--json") == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)}
    assert {rows[k]["kind"] for k in rows} == set(needs.KINDS) and "tiny-ip-adapter" in rows
    assert rows["ip-adapter-sdxl"]["status"] == "missing" and rows["rife-4.9"]["repo_id"] == "lividtm/RIFE"
    assert rows["svd-xt"]["hub_url"] == "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt"
    assert models(tmp_path, "download", "realesrgan-x4plus", "ip-adapter-sdxl", fetch=FakeHub()) == 0
    out = capsys.readouterr().out
    assert "realesrgan-x4plus is ready" in out and "ip-adapter-sdxl is ready" in out
    assert models(tmp_path, "verify", "ip-adapter-sdxl") == 0
    assert models(tmp_path, "list") == 0
    assert "ip-adapter" in capsys.readouterr().out
    assert models(tmp_path, "verify", "qwen2.5-1.5b-instruct") == 1
    assert "models download qwen2.5-1.5b-instruct" in capsys.readouterr().err
    assert models(tmp_path, "link", "ip-adapter-sdxl", str(tmp_path)) == 1
    assert "not a diffusers pipeline" in capsys.readouterr().err


def test_ctrl_c_on_the_cli_cancels_and_the_same_command_resumes(tmp_path, capsys, monkeypatch) -> None:
    hub, pressed = FakeHub(block_on=f"{ip_adapter.IMAGE_ENCODER}/model.safetensors"), []
    draw = cli_models._TextBar.__call__

    def ctrl_c_while_waiting(bar, done: int, total: int | None) -> None:
        # Ctrl-C reaches the main thread while it waits on the download, delivered here at the wait loop's
        # drawing point: an asynchronous _thread.interrupt_main() can land inside threading's own lock handling
        # (a thread being started) and leave a lock held, hanging every later Thread.start in the process.
        if hub.blocking.is_set() and not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        draw(bar, done, total)

    monkeypatch.setattr(cli_models._TextBar, "__call__", ctrl_c_while_waiting)
    assert models(tmp_path, "download", "ip-adapter-sdxl", fetch=hub) == 130
    err = capsys.readouterr().err
    assert "cancelling ip-adapter-sdxl" in err and "run the same command again to resume" in err
    ref = needs.find_preset("ip-adapter-sdxl")
    assert needs.model_status(ref, tmp_path).state == "partial" and ip_adapter.WEIGHTS in hub.fetched
    assert models(tmp_path, "download", "ip-adapter-sdxl", fetch=FakeHub()) == 0
    assert needs.model_status(ref, tmp_path).state == "downloaded"


# --- gated models and the token -------------------------------------------------------------------------

def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))


@pytest.mark.parametrize("error", [errors.GatedRepoError("restricted", response=response(403)),
                                   errors.HfHubHTTPError("401", response=response(401)),
                                   errors.HfHubHTTPError("403", response=response(403))])
def test_a_refused_gated_download_names_its_licence_page(tmp_path, error) -> None:
    svd = needs.find_preset("svd-xt")
    message = downloads.explain_hub_error(error, svd, tmp_path)
    assert message and "accept its licence at https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt" \
        in message and "Models page" in message and "\n" not in message
    other = downloads.explain_hub_error(error, needs.find_preset("ltx-2b"), tmp_path)
    assert other and (("gated" in other) if isinstance(error, errors.GatedRepoError) else downloads.TOKENS_PAGE in other)


@pytest.fixture
def token_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf"


def test_a_token_goes_to_huggingface_hubs_own_store_and_nowhere_else(token_store, monkeypatch, caplog) -> None:
    import huggingface_hub.hf_api

    secret = "hf_" + "x" * 34
    assert not downloads.has_token()
    with pytest.raises(DownloadError, match="Cannot reach the Hugging Face Hub to check the token"):
        downloads.save_token(secret)  # HF_HUB_OFFLINE=1: nothing is stored unchecked
    assert not downloads.has_token() and not (token_store / "token").exists()

    def refuse(token, **_):
        raise errors.HfHubHTTPError("401 Unauthorized", response=response(401))

    monkeypatch.setattr(huggingface_hub.hf_api, "whoami", refuse)
    with pytest.raises(DownloadError, match=r"refused this token \(HTTP 401\)") as refused:
        downloads.save_token(secret)
    assert secret not in str(refused.value)
    monkeypatch.setattr(huggingface_hub.hf_api, "whoami",
                        lambda token, **_: {"name": "me", "auth": {"accessToken": {"displayName": "studio"}}})
    with caplog.at_level("DEBUG"):
        downloads.save_token(f"  {secret}\n")
    assert (token_store / "token").read_text().strip() == secret and downloads.has_token()
    assert secret not in caplog.text
    with pytest.raises(DownloadError, match="Paste an access token"):
        downloads.save_token("   ")
