"""Downloads without the network: a fake snapshot_download, hub errors mapped to sentences, the store."""

from __future__ import annotations

import argparse
import errno
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from huggingface_hub import errors

from backend.cli.models import add_parser as add_models_parser
from backend.cli.models import run as run_models
from backend.errors import DownloadError, ModelFolderError
from backend.models import downloads, store
from backend.models.downloads import download, explain_hub_error
from backend.models.registry import MODELS
from backend.paths import runtime_paths

SVD = MODELS["svd-xt"]
FILES = {
    "model_index.json": json.dumps({"_class_name": "StableVideoDiffusionPipeline",
                                    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"]}).encode(),
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.fp16.safetensors": b"w" * 5000,
}


class FakeHub:
    """Writes FILES into local_dir and drives tqdm_class bars the way huggingface_hub 2.x does."""

    def __init__(self, *, fail: BaseException | None = None, fail_at: int = 0) -> None:
        self.fail, self.fail_at = fail, fail_at
        self.calls: list[dict] = []

    def __call__(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        bar = kwargs["tqdm_class"]
        disk = bar(desc="Reconstructing (incomplete total...)", total=0, initial=0, unit="B", unit_scale=True)
        network = bar(desc="Downloading bytes", total=0, initial=0, unit="B", unit_scale=True)
        for _ in bar(list(FILES), desc=f"Fetching {len(FILES)} files"):
            pass
        for index, (name, data) in enumerate(FILES.items()):
            if self.fail is not None and index == self.fail_at:
                error, self.fail = self.fail, None  # fail once, like a dropped connection
                raise error
            path = Path(kwargs["local_dir"]) / name
            disk.total += len(data)
            if path.is_file() and path.stat().st_size == len(data):
                disk.update(len(data))  # resumed: already there
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            disk.update(len(data))
            network.update(len(data))
        return str(kwargs["local_dir"])


def response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))


@pytest.fixture(autouse=True)
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL_S", 0.0)


def test_download_writes_the_marker_after_success_and_reports_bytes(tmp_path: Path) -> None:
    hub = FakeHub()
    seen: list[tuple[int, int | None]] = []
    folder = download(SVD, tmp_path, progress=lambda done, total: seen.append((done, total)), fetch=hub)
    assert folder == tmp_path / "svd-xt" and (folder / store.COMPLETE_MARKER).is_file()
    (call,) = hub.calls
    assert call["repo_id"] == SVD.repo_id and call["revision"] == SVD.revision
    assert call["allow_patterns"] == list(SVD.allow_patterns) and call["local_dir"] == folder
    total = sum(map(len, FILES.values()))
    assert seen[-1] == (total, total)  # the network bar is not counted twice
    assert all(done <= (t or 0) for done, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    marker = store.read_marker(folder)
    assert marker and marker["repo_id"] == SVD.repo_id and marker["files"]["unet/config.json"] == 2
    assert store.status(SVD, tmp_path).state == "downloaded" and store.verify(SVD, tmp_path) == []
    assert store.local_folder(SVD, tmp_path) == folder


def test_complete_download_is_not_fetched_again(tmp_path: Path) -> None:
    download(SVD, tmp_path, fetch=FakeHub())
    hub = FakeHub()
    download(SVD, tmp_path, fetch=hub)
    assert hub.calls == []


def test_interrupted_download_leaves_no_marker_and_resumes(tmp_path: Path) -> None:
    hub = FakeHub(fail=ConnectionError("connection reset"), fail_at=2)
    with pytest.raises(DownloadError, match="network failed.*resumes"):
        download(SVD, tmp_path, fetch=hub)
    folder = tmp_path / "svd-xt"
    assert not (folder / store.COMPLETE_MARKER).exists()
    assert store.status(SVD, tmp_path).state == "partial" and store.local_folder(SVD, tmp_path) is None
    assert store.verify(SVD, tmp_path) and "partly downloaded" in store.verify(SVD, tmp_path)[0]
    download(SVD, tmp_path, fetch=hub)  # the same hub, now working: picks up the missing file
    assert store.status(SVD, tmp_path).state == "downloaded"


def test_ctrl_c_propagates_and_leaves_no_marker(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        download(SVD, tmp_path, fetch=FakeHub(fail=KeyboardInterrupt(), fail_at=1))
    assert store.status(SVD, tmp_path).state == "partial"


def test_damaged_download_is_noticed_and_fetched_again(tmp_path: Path) -> None:
    folder = download(SVD, tmp_path, fetch=FakeHub())
    (folder / "unet/diffusion_pytorch_model.fp16.safetensors").write_bytes(b"short")
    problems = store.verify(SVD, tmp_path)
    assert len(problems) == 1 and "expected 5,000" in problems[0]
    weights = folder / "unet/diffusion_pytorch_model.fp16.safetensors"
    weights.unlink()
    download(SVD, tmp_path, fetch=FakeHub())
    assert store.verify(SVD, tmp_path) == []


def test_free_space_is_checked_before_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: SimpleNamespace(free=1024**3))
    hub = FakeHub()
    with pytest.raises(DownloadError, match=r"Not enough disk space for svd-xt: it needs about 4\.7 GB"):
        download(SVD, tmp_path, fetch=hub)
    assert hub.calls == []


@pytest.mark.parametrize(("error", "expected"), [
    (errors.GatedRepoError("restricted", response=response(403)), "is gated: accept its licence at https://"),
    (errors.RepositoryNotFoundError("404", response=response(404)), "has no repository"),
    (errors.RevisionNotFoundError("404", response=response(404)), f"has no revision '{SVD.revision}'"),
    (errors.OfflineModeIsEnabled("offline"), "Cannot reach the Hugging Face Hub"),
    (errors.LocalEntryNotFoundError("not cached"), "models link svd-xt FOLDER"),
    (OSError(errno.ENOSPC, "No space left on device"), "The disk filled up"),
    (errors.HfHubHTTPError("boom", response=response(503)), "HTTP 503"),
    (httpx2.ConnectError("dns failure"), "network failed"),
    (TimeoutError("read timed out"), "network failed"),
])
def test_each_hub_error_maps_to_one_actionable_sentence(tmp_path: Path, error: BaseException, expected: str) -> None:
    message = explain_hub_error(error, SVD, tmp_path / "svd-xt")
    assert message is not None and expected in message
    assert message.count("\n") == 0 and message.endswith(".")
    with pytest.raises(DownloadError, match=expected.split(":")[0].replace("(", r"\(")):
        download(SVD, tmp_path, fetch=FakeHub(fail=error))


def test_unexpected_errors_are_not_disguised(tmp_path: Path) -> None:
    assert explain_hub_error(ValueError("bug"), SVD, tmp_path) is None
    with pytest.raises(ValueError, match="bug"):
        download(SVD, tmp_path, fetch=FakeHub(fail=ValueError("bug")))


# --- folders a user already has -----------------------------------------------------------------------


def make_pipeline_folder(root: Path, class_name: str = "StableVideoDiffusionPipeline") -> Path:
    folder = root / "my-svd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name,
                                                         "unet": ["diffusers", "UNetSpatioTemporalConditionModel"]}))
    (folder / "unet/config.json").write_text("{}")
    (folder / "unet/diffusion_pytorch_model.safetensors").write_bytes(b"w")
    return folder


def test_link_points_a_preset_at_an_existing_folder(tmp_path: Path) -> None:
    folder = make_pipeline_folder(tmp_path)
    models = tmp_path / "models"
    assert store.link(SVD, folder, models) == folder.resolve()
    assert store.status(SVD, models).state == "linked" and store.local_folder(SVD, models) == folder.resolve()
    assert store.verify(SVD, models) == []
    hub = FakeHub()
    assert download(SVD, models, fetch=hub) == folder.resolve() and hub.calls == []
    assert "unlinked" in store.remove(SVD, models)
    assert folder.is_dir() and store.status(SVD, models).state == "missing"


def test_link_refuses_folders_that_cannot_serve_the_preset(tmp_path: Path) -> None:
    wrong = make_pipeline_folder(tmp_path / "a", "StableDiffusionXLPipeline")
    with pytest.raises(ModelFolderError, match="needs a StableVideoDiffusionPipeline"):
        store.link(SVD, wrong, tmp_path / "models")
    folder = make_pipeline_folder(tmp_path / "b")
    (folder / "unet/diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="no weight files"):
        store.link(SVD, folder, tmp_path / "models")
    with pytest.raises(ModelFolderError, match="model_index.json"):
        store.link(SVD, tmp_path / "nowhere", tmp_path / "models")


def test_remove_deletes_a_download(tmp_path: Path) -> None:
    download(SVD, tmp_path, fetch=FakeHub())
    assert "deleted" in store.remove(SVD, tmp_path)
    assert store.status(SVD, tmp_path).state == "missing"
    assert "nothing to remove" in store.remove(SVD, tmp_path)


def test_tiny_models_are_built_not_downloaded() -> None:
    root = runtime_paths().models
    ref = MODELS["tiny-sdxl"]
    folder = download(ref, root, fetch=lambda **kw: pytest.fail("tiny models never touch the hub"))
    assert (folder / "model_index.json").is_file()
    assert store.status(ref, root).state == "built" and store.verify(ref, root) == []


# --- `python -m backend models ...` -------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="backend")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def models(tmp_path: Path, *argv: str, fetch: FakeHub | None = None) -> int:
    return run_models(parse("models", *argv, "--models-dir", str(tmp_path)), fetch=fetch)


# --- models -----------------------------------------------------------------------------------------


def test_list_shows_presets_with_sizes_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models(tmp_path, "list") == 0
    out = capsys.readouterr().out
    for key in ("sdxl-base", "sdxl-turbo", "svd-xt", "cogvideox-5b-i2v", "ltx-2b", "wan-flf2v-14b", "tiny-svd"):
        assert key in out
    assert "6.5 GB" in out and "19.6 GB" in out and "missing" in out and "gated" in out


def test_list_json_has_the_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models(tmp_path, "list", "--json") == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)}
    svd = rows["svd-xt"]
    assert svd["status"] == "missing" and svd["gated"] and svd["size_gb"] == 4.2
    assert list(svd["min_vram_gb"]) == ["gpu", "model_offload", "group_offload", "fp8_group_offload",
                                        "sequential_offload"]
    assert rows["ltx-2b"]["low_memory"] and rows["tiny-sdxl"]["min_vram_gb"] == {}


def test_download_verify_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models(tmp_path, "download", "svd-xt", fetch=FakeHub()) == 0
    assert "svd-xt is ready" in capsys.readouterr().out
    assert models(tmp_path, "verify", "svd-xt") == 0
    models(tmp_path, "list")
    assert "downloaded" in capsys.readouterr().out
    assert models(tmp_path, "remove", "svd-xt") == 0
    assert "deleted" in capsys.readouterr().out
    assert models(tmp_path, "verify", "svd-xt") == 1
    assert "not downloaded" in capsys.readouterr().err


def test_failures_are_one_line_with_a_non_zero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from huggingface_hub import errors

    assert models(tmp_path, "download", "svd-xt", fetch=FakeHub(fail=errors.OfflineModeIsEnabled("off"))) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: Cannot reach the Hugging Face Hub") and "Traceback" not in err
    assert models(tmp_path, "download", "nope") == 1
    assert "Known models" in capsys.readouterr().err


def test_link_and_unlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_pipeline_folder(tmp_path / "mine")
    assert models(tmp_path / "models", "link", "svd-xt", str(folder)) == 0
    assert models(tmp_path / "models", "verify", "svd-xt") == 0
    assert models(tmp_path / "models", "unlink", "svd-xt") == 0
    assert "unlinked" in capsys.readouterr().out
    assert models(tmp_path / "models", "link", "svd-xt", str(tmp_path / "nowhere")) == 1


def test_the_real_hub_client_offline_gives_the_offline_sentence(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The real snapshot_download (HF_HUB_OFFLINE=1 in conftest) accepts our arguments and fails by class."""
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: SimpleNamespace(free=1024**4))
    with pytest.raises(DownloadError, match="Cannot reach the Hugging Face Hub"):
        download(SVD, tmp_path)
    assert store.status(SVD, tmp_path).state != "downloaded"
