"""The bad-input corpus: every entry gets a clear message and changes nothing else.

Uploads (images, videos, client file names), batch manifests, LUT files at submit time, and
numbers/prompts through the command line. Prompt and number validation at the spec level lives in
tests/test_spec.py; LUT parsing line by line in tests/test_luts.py; this file covers the paths a
user's input takes into the studio, and one end-to-end job whose prompt is hostile but valid.
"""

from __future__ import annotations

import functools
import io
import json
import re
import struct
import subprocess
import threading
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from backend import cli
from backend.errors import SpecError, UploadError
from backend.jobs import orchestrator
from backend.jobs.orchestrator import VideoGenerator
from backend.jobs.store import JobStore
from backend.media import uploads
from backend.media.uploads import store_image, store_video
from backend.media.video_io import ffmpeg_exe, last_frame, read_metadata
from backend.paths import runtime_paths
from backend.spec import FinishOptions, JobSpec

TIMEOUT = 300
STORED_NAME = re.compile(r"[0-9a-f]{20}\.(png|jpg|webp|bmp|mp4|mkv|avi)")


# --- corpus builders -----------------------------------------------------------------------------
def png_bytes(size: tuple[int, int] = (320, 180), noise: bool = True) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if noise else np.zeros(
        (size[1], size[0], 3), np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def image_bytes(fmt: str, size: tuple[int, int] = (320, 180)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        out, format=fmt)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A PNG with the given header; ``rows`` (already filtered) default to one short zero row."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    body = zlib.compress(rows if rows is not None else b"\x00" * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def bomb_png() -> bytes:
    """~64 KB on disk, 8000×8000 = 64 megapixels once decoded."""
    side = 8000
    return crafted_png(side, side, (b"\x00" + b"\x00" * side) * side)


EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 50 + b"PE\x00\x00" + bytes(range(256)) * 8
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + bytes(range(256)) * 8

IMAGE_CORPUS = {
    "zero bytes": (lambda: b"", "empty"),
    "truncated PNG": (lambda: png_bytes()[: len(png_bytes()) // 2], "not a readable image"),
    "truncated JPEG": (lambda: image_bytes("JPEG")[: len(image_bytes("JPEG")) // 2], "not a readable image"),
    "decompression bomb (64 MP in 64 KB)": (bomb_png, "megapixels"),
    "20000×20000 image": (lambda: crafted_png(20000, 20000), "decompression bomb"),
    "1×1 image": (lambda: png_bytes((1, 1)), "at least 64 pixels"),
    ".exe renamed .png": (lambda: EXE, "not a readable image"),
    "ELF binary renamed .png": (lambda: ELF, "not a readable image"),
    "SVG with script renamed .png": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                                     "not a readable image"),
    "GIF (not an accepted format)": (lambda: image_bytes("GIF"), "must be PNG, JPEG, WebP or BMP"),
}


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_short(error: Exception) -> None:
    """One readable line: no ffmpeg banner, no temporary path."""
    text = str(error)
    assert "\n" not in text and len(text) < 250 and ".upload-" not in text, text


@pytest.fixture
def upload_root(tmp_path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    return root


@pytest.mark.parametrize("case", list(IMAGE_CORPUS))
@pytest.mark.unit
def test_bad_images_are_refused_and_nothing_is_stored(upload_root, case):
    build, message = IMAGE_CORPUS[case]
    with pytest.raises(UploadError, match=message) as error:
        store_image(build(), "picture.png", upload_root)
    assert_short(error.value)
    assert files_under(upload_root) == []


@pytest.mark.unit
def test_an_oversized_upload_is_refused_before_decoding(upload_root, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(UploadError, match="the limit is"):
        store_image(png_bytes(), "big.png", upload_root)
    assert files_under(upload_root) == []


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    made = {name: folder / name for name in ("audio-only.mp4", "no-frames.avi", "odd-161x97.mp4", "plain.mp4")}
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(made["audio-only.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:d=1:r=8", "-frames:v", "0", "-c:v", "mpeg4",
           str(made["no-frames.avi"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=161x97:d=1:r=8", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           str(made["odd-161x97.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x96:d=1:r=8", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(made["plain.mp4"]))
    return made


VIDEO_CORPUS = {
    "zero bytes": (lambda v: b"", "empty"),
    ".exe renamed .mp4": (lambda v: EXE, "not a video file"),
    "PNG renamed .mp4": (lambda v: png_bytes(), "not a video file"),
    "HLS playlist renamed .mp4 (reads other files)": (
        lambda v: b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        "not a video file"),
    "ffconcat list renamed .mp4": (lambda v: b"ffconcat version 1.0\nfile /etc/passwd\n", "not a video file"),
    "truncated MP4": (lambda v: v["plain.mp4"].read_bytes()[: v["plain.mp4"].stat().st_size // 2],
                      "not a usable video"),
    "audio only (no video stream)": (lambda v: v["audio-only.mp4"].read_bytes(), "no video stream"),
    "video stream with no frames": (lambda v: v["no-frames.avi"].read_bytes(), "could not decode"),
}


@pytest.mark.parametrize("case", list(VIDEO_CORPUS))
def test_bad_videos_are_refused_and_nothing_is_stored(upload_root, videos, case):
    build, message = VIDEO_CORPUS[case]
    with pytest.raises(UploadError, match=message) as error:
        store_video(build(videos), "clip.mp4", upload_root)
    assert_short(error.value)
    assert files_under(upload_root) == []


def test_an_odd_sized_video_is_accepted_and_reads_back(upload_root, videos):
    stored = store_video(videos["odd-161x97.mp4"].read_bytes(), "odd.mp4", upload_root)
    assert "161×97" in stored.summary and STORED_NAME.fullmatch(stored.path.name)
    assert last_frame(stored.path).shape == (97, 161, 3)


HOSTILE_NAMES = ["../../x.png", "/etc/passwd", "C:\\x.png", "C:\\Windows\\System32\\evil.png", "con.png",
                 "NUL", "pic\x00.png", "line\nbreak\r.png", "<script>alert(1)</script>.png",
                 "\u202egnp.exe", "", "   ", "x" * 5000, "..", "~/.ssh/id_rsa"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
@pytest.mark.unit
def test_client_file_names_never_become_paths(upload_root, name):
    stored = store_image(png_bytes(), name, upload_root)
    assert stored.path.parent == upload_root / "images" and STORED_NAME.fullmatch(stored.path.name)
    assert files_under(upload_root.parent) == [stored.path]  # nothing written anywhere else
    shown = stored.display_name
    assert shown and len(shown) <= uploads.MAX_DISPLAY_NAME
    assert not any(c in shown for c in "/\\\x00\n\r\u202e")


@pytest.mark.unit
def test_the_same_file_uploaded_at_once_from_eight_threads(upload_root):
    data, results, errors = png_bytes(), [], []

    def upload() -> None:
        try:
            results.append(store_image(data, "same.png", upload_root).path)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert files_under(upload_root) == results[:1] and results[0].read_bytes() == data


# --- the command line: manifests and numbers ------------------------------------------------------
@pytest.fixture
def run_cli(studio_home, monkeypatch, capsys):
    """``python -m backend ...`` in-process, with a studio that never starts a worker; (code, stderr)."""
    monkeypatch.setattr(orchestrator, "VideoGenerator", functools.partial(VideoGenerator, start_worker=False))

    def call(*args: str) -> tuple[int, str]:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse refuses before our code runs
            code = exc.code
        return code, capsys.readouterr().err

    yield call
    assert JobStore(studio_home.database).count() == 0  # nothing was queued ...
    assert files_under(studio_home.uploads) == []  # ... and nothing stored


def one_line_error(code: int, err: str, words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert words in lines[0] and "Traceback" not in err


MANIFESTS = {
    "NaN duration": ('[{"prompt": "x", "duration": NaN}]', "finite"),
    "1e999 duration": ('[{"prompt": "x", "duration": 1e999}]', "finite"),
    "1e999 fps": ('[{"prompt": "x", "fps": 1e999}]', "whole number"),
    "an object, not a list": ('{"prompt": "x"}', "non-empty JSON list"),
    "empty list": ("[]", "non-empty JSON list"),
    "a string item": ('["x"]', "must be a JSON object"),
    "finish as a list": ('[{"prompt": "x", "finish": []}]', "must be a JSON object"),
    "finish.lut as a number": ('[{"prompt": "x", "finish": {"lut": 5}}]', "must be text"),
    "NUL in the prompt": ('[{"prompt": "x\\u0000y"}]', "control characters"),
    "seed as text": ('[{"prompt": "x", "seed": "7"}]', "whole number"),
    "null prompt": ('[{"prompt": null}]', "must be text"),
    "second item bad": ('[{"prompt": "ok"}, {"prompt": "x", "fps": -4}]', "manifest item 1"),
    "UTF-8 BOM": ('\ufeff[{"prompt": "x"}]', "not valid JSON"),
    "image path traversal": ('[{"prompt": "x", "mode": "i2v", "image": "../../../../../../etc/passwd"}]',
                             "not a readable image"),
}


@pytest.mark.parametrize("case", list(MANIFESTS))
@pytest.mark.unit
def test_bad_manifests_are_refused_with_one_line(run_cli, tmp_path, case):
    content, words = MANIFESTS[case]
    manifest = tmp_path / "batch.json"
    manifest.write_text(content, encoding="utf-8")
    one_line_error(*run_cli("generate", "--models", "tiny", "--manifest", str(manifest)), words)


@pytest.mark.unit
def test_a_deeply_nested_manifest_is_refused_with_one_line(run_cli, tmp_path):
    manifest = tmp_path / "batch.json"
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(*run_cli("generate", "--manifest", str(manifest)), "manifest")


@pytest.mark.unit
def test_a_manifest_that_is_not_utf8_is_refused(run_cli, tmp_path):
    manifest = tmp_path / "batch.json"
    manifest.write_bytes(b'[{"prompt": "caf\xe9"}]')
    one_line_error(*run_cli("generate", "--manifest", str(manifest)), "not valid JSON")


BASE = ["generate", "--models", "tiny", "--prompt", "ocean waves"]
NUMBERS = {
    "fps 0": (["--fps", "0"], "fps"),
    "fps negative": (["--fps", "-5"], "fps"),
    "fps huge": (["--fps", "100000"], "fps"),
    "duration 0": (["--duration", "0"], "duration"),
    "duration NaN": (["--duration", "nan"], "finite"),
    "duration inf": (["--duration", "inf"], "finite"),
    "duration huge": (["--duration", "1e9"], "duration"),
    "size 0x0": (["--size", "0x0"], "width"),
    "size huge": (["--size", "99999x99999"], "width"),
    "size negative": (["--size=-256x144"], "width"),
    "size odd": (["--size", "255x144"], "even"),
    "size three parts": (["--size", "256x144x3"], "--size"),
    "size empty": (["--size", ""], "--size"),
    "seed negative": (["--seed", "-1"], "seed"),
    "seed above 2**32": (["--seed", str(2**32)], "seed"),
    "steps 0": (["--steps", "0"], "steps"),
    "keyframes 0": (["--keyframes", "0"], "keyframes"),
    "keyframes 99": (["--keyframes", "99"], "keyframes"),
    "guidance NaN": (["--guidance", "nan"], "finite"),
    "motion strength 5": (["--motion-strength", "5"], "motion_strength"),
}


@pytest.mark.parametrize("case", list(NUMBERS))
@pytest.mark.unit
def test_bad_numbers_through_the_cli_get_one_line(run_cli, case):
    extra, words = NUMBERS[case]
    one_line_error(*run_cli(*BASE, *extra), words)


@pytest.mark.parametrize("option, value", [("--fps", "fast"), ("--fps", "1e3"), ("--duration", "ten"),
                                           ("--seed", "abc"), ("--seed", "0x10"), ("--steps", "1.5")])
@pytest.mark.unit
def test_non_numeric_strings_are_refused_by_the_parser(run_cli, option, value):
    code, err = run_cli(*BASE, option, value)
    assert code == 2 and "invalid" in err and value in err and "Traceback" not in err


@pytest.mark.parametrize("prompt, words", [("a\x00b", "control characters"), ("x" * 20_000, "20,000 characters"),
                                           (" \t\n ", "empty"), ("bell\x07", "control characters")])
@pytest.mark.unit
def test_bad_prompts_through_the_cli_get_one_line(run_cli, prompt, words):
    one_line_error(*run_cli("generate", "--models", "tiny", "--prompt", prompt), words)


# --- LUTs, at submit time --------------------------------------------------------------------------
LUTS = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "no size line": b"0 0 0\n1 1 1\n",
    "too few rows": b"LUT_3D_SIZE 2\n0 0 0\n1 1 1\n",
    "NaN in a row": b"LUT_3D_SIZE 2\n" + b"0 0 0\n" * 7 + b"nan 0 0\n",
    "1D LUT": b"LUT_1D_SIZE 2\n0 0 0\n1 1 1\n",
    "huge size": b"LUT_3D_SIZE 100000\n",
}


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Iterator[VideoGenerator]:
    gen = VideoGenerator(runtime_paths(tmp_path_factory.mktemp("studio")))
    yield gen
    gen.shutdown()


@pytest.mark.unit
@pytest.mark.parametrize("case", [*LUTS, "missing file"])
def test_a_malformed_lut_is_refused_before_the_job_is_queued(generator, tmp_path, case):
    lut = tmp_path / "look.cube"
    if case != "missing file":
        lut.write_bytes(LUTS[case])
    before = len(generator.history())
    spec = JobSpec(prompt="x", model_set="tiny", duration=1, fps=8, width=256, height=144,
                   finish=FinishOptions(lut=str(lut)))
    with pytest.raises(SpecError) as info:
        generator.submit(spec)
    assert info.value.field == "finish.lut" and "LUT file" in info.value.message
    assert len(generator.history()) == before


# --- a hostile but valid prompt, end to end --------------------------------------------------------
@pytest.mark.tiny
@pytest.mark.e2e
def test_html_shell_rtl_and_emoji_prompt_stays_text_end_to_end(generator, tmp_path):
    canary = tmp_path / "pwned"
    prompt = (f'<script>alert("x")</script><img src=x onerror=alert(1)> مرحبا بالعالم 🌊🔥 '
              f'$(touch {canary}) `touch {canary}`; rm -rf ~ | cat /etc/passwd > {canary} \'"\\ %s %n {{}}')
    spec = JobSpec(prompt=prompt, model_set="tiny", duration=1, fps=8, seed=3, width=256, height=144)
    status = generator.wait(generator.submit(spec), timeout=TIMEOUT)
    assert status.state == "done", status.error
    output = Path(status.output)
    assert output.parent == generator.paths.outputs
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}_[a-z0-9-]+_[0-9a-f]{8}\.mp4", output.name)
    assert json.loads(Path(status.sidecar).read_text(encoding="utf-8"))["spec"]["prompt"] == prompt
    tags = read_metadata(output)
    assert json.loads(tags["comment"])["prompt"] == prompt  # the exact text, as one argv element
    assert tags["title"].startswith("[test models") and prompt[:80] in tags["title"]
    assert not canary.exists()  # no shell ever saw it


@pytest.mark.unit
def test_an_exif_rotated_photo_is_stored_and_read_upright(upload_root, tmp_path):
    from backend.media.uploads import load_image

    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90° clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.zeros((180, 320, 3), np.uint8)).save(path, exif=exif)
    stored = store_image(path.read_bytes(), path.name, upload_root)
    assert load_image(stored.path).size == (180, 320)
