"""Faults injected into real tiny jobs: each ends the job with a clear message, keeps the store
consistent, leaves other outputs alone, and the worker goes on with the next job.

Disk full is a real ENOSPC from the kernel: a keyframe's temp file is a symlink to /dev/full, and
ffmpeg's output is redirected to /dev/full by a wrapper. ffmpeg crashing or missing is an
IMAGEIO_FFMPEG_EXE that exits non-zero or does not exist. OOM step-downs per stage are covered in
tests/test_oom.py; the kill -9 + resume round trip in tests/test_reliability_resume.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from backend.jobs import housekeeping, orchestrator
from backend.jobs.orchestrator import VideoGenerator
from backend.jobs.store import JobStore
from backend.media.video_io import iter_frames
from backend.paths import runtime_paths
from backend.spec import JobSpec

REPO = Path(__file__).resolve().parent.parent
PROMPT = "ocean waves crashing on a beach at golden hour"
TIMEOUT = 300


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Iterator[VideoGenerator]:
    gen = VideoGenerator(runtime_paths(tmp_path_factory.mktemp("studio")))
    yield gen
    gen.shutdown()


def tiny(**changes) -> JobSpec:
    values = dict(prompt=PROMPT, model_set="tiny", duration=1, fps=8, seed=7, width=256, height=144)
    values.update(changes)
    return JobSpec(**values)


def frames_of(path: str | Path) -> np.ndarray:
    return np.stack(list(iter_frames(Path(path))))


@pytest.fixture(scope="module")
def baseline(generator) -> np.ndarray:
    """An uninterrupted job: its video is the one every resumed job below must reproduce."""
    status = generator.wait(generator.submit(tiny()), timeout=TIMEOUT)
    assert status.state == "done", status.error
    return frames_of(status.output)


def outputs_snapshot(generator: VideoGenerator) -> dict[str, str]:
    """Every delivered file with its hash (the studio's own state folder aside)."""
    outputs = generator.paths.outputs
    return {str(p.relative_to(outputs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(outputs.rglob("*")) if p.is_file() and ".studio" not in p.relative_to(outputs).parts}


def assert_store_intact(generator: VideoGenerator) -> None:
    assert generator.store.integrity_problems() == []


@contextmanager
def on_stage_start(generator: VideoGenerator, stage: str, action: Callable[[str], None]) -> Iterator[None]:
    """Call ``action(job_id)`` in the worker thread as ``stage`` begins, before it does any work."""
    original = generator._progress

    def hooked(job_id, live, eta, current, fraction, message, *rest):
        original(job_id, live, eta, current, fraction, message, *rest)
        if current == stage and message == f"{stage}…":
            action(job_id)

    generator._progress = hooked
    try:
        yield
    finally:
        del generator._progress


def run(generator: VideoGenerator, job_id: str):
    return generator.wait(job_id, timeout=TIMEOUT)


def ffmpeg_script(tmp_path: Path, name: str, body: str) -> Path:
    """A stand-in ffmpeg (a Python script; product code runs it without a shell)."""
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\nimport os, sys\n{body}\n")
    script.chmod(0o755)
    return script


def wrapped_ffmpeg(tmp_path: Path, name: str, on_encode: str) -> Path:
    """ffmpeg as usual, except that the encode calls (output ``attempt*``) run ``on_encode`` first."""
    import imageio_ffmpeg

    return ffmpeg_script(tmp_path, name, (
        "args = sys.argv[1:]\n"
        "if args and args[-1].startswith('attempt'):\n"
        + "".join(f"    {line}\n" for line in on_encode.splitlines())
        + f"os.execv({imageio_ffmpeg.get_ffmpeg_exe()!r}, ['ffmpeg', *args])"))


# --- disk full ---------------------------------------------------------------------------------
def test_disk_full_while_saving_a_keyframe_fails_cleanly(generator, baseline):
    before = outputs_snapshot(generator)

    def fill_disk(job_id: str) -> None:
        folder = generator.paths.job_workdir(job_id) / "keyframes"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "keyframe_000.tmp.png").symlink_to("/dev/full")

    with on_stage_start(generator, "keyframes", fill_disk):
        status = run(generator, generator.submit(tiny(seed=8)))
    assert status.state == "failed" and status.stage == "keyframes"
    assert status.error.startswith("The disk is full") and "resume" in status.error
    workdir = generator.paths.job_workdir(status.id)
    assert list((workdir / "keyframes").iterdir()) == []  # no temp file keeps the space
    assert outputs_snapshot(generator) == before
    assert_store_intact(generator)
    assert generator.has_worker


def test_disk_full_while_encoding_then_ffmpeg_crashing_broken_missing_then_resume(generator, baseline, tmp_path,
                                                                                   monkeypatch):
    """One job meets four finishing faults in turn; each resume re-runs only what is not finished."""
    before = outputs_snapshot(generator)
    # Every write of the encode fails with ENOSPC, as on a full disk.
    full = wrapped_ffmpeg(tmp_path, "ffmpeg-disk-full", "args[-1] = '/dev/full'")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(full))
    status = run(generator, generator.submit(tiny()))
    assert status.state == "failed" and status.stage == "finish"
    assert status.error.startswith("The disk is full") and "No space left on device" in status.error
    assert generator.resumable_stages(status.id) == ["analyze", "keyframes", "motion", "assemble"]

    # ffmpeg crashes while encoding (every format of the fallback chain).
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(wrapped_ffmpeg(
        tmp_path, "ffmpeg-crash", "sys.stderr.write('Segmentation fault (simulated)\\n')\nsys.exit(139)")))
    assert generator.resume(status.id)
    status = run(generator, status.id)
    assert status.state == "failed" and status.stage == "finish"
    assert "No output format could be written" in status.error and "Segmentation fault" in status.error

    # ffmpeg that does not even start, then no ffmpeg at all: refused before any stage runs.
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(ffmpeg_script(tmp_path, "ffmpeg-broken", "sys.exit(1)")))
    assert generator.resume(status.id)
    status = run(generator, status.id)
    assert status.state == "failed" and "does not work (exit status 1)" in status.error
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-such-ffmpeg"))
    assert generator.resume(status.id)
    status = run(generator, status.id)
    assert status.state == "failed" and "ffmpeg was not found" in status.error

    assert outputs_snapshot(generator) == before  # no partial file at any point
    assert_store_intact(generator)

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
    assert generator.resume(status.id)
    status = run(generator, status.id)
    assert status.state == "done", status.error
    assert status.record.attempt == 3  # the two refused attempts never started a stage
    assert [s for s, data in status.record.stages.items() if data.kept] == [
        "analyze", "keyframes", "motion", "assemble"]
    assert np.array_equal(frames_of(status.output), baseline)
    assert set(outputs_snapshot(generator)) - set(before) == {Path(status.output).name, Path(status.sidecar).name}


# --- cancel, and resumes after damage --------------------------------------------------------------
def test_cancel_in_every_stage_then_resume_gives_the_same_video(generator, baseline, monkeypatch):
    released = []
    after_job = generator.memory.after_job
    monkeypatch.setattr(generator.memory, "after_job", lambda: (released.append(1), after_job()))
    job_id = None
    for attempt, stage in enumerate(("analyze", "keyframes", "motion", "assemble", "finish"), start=1):
        with on_stage_start(generator, stage, generator.cancel):
            if job_id is None:
                job_id = generator.submit(tiny())
            else:
                assert generator.resume(job_id)
            status = run(generator, job_id)
        assert (status.state, status.stage, status.output) == ("cancelled", stage, None)
        assert len(released) == attempt  # the attempt's memory is handed back every time
        assert generator.has_worker
    assert generator.resumable_stages(job_id) == ["analyze", "keyframes", "motion", "assemble"]

    # A frame torn by a power cut (same name, fewer bytes): that segment is made again, nothing else.
    frames = sorted(generator.paths.job_workdir(job_id).glob("segments/segment_000/*.png"))
    frames[len(frames) // 2].write_bytes(frames[len(frames) // 2].read_bytes()[:100])
    assert generator.resumable_stages(job_id) == ["analyze", "keyframes"]
    assert generator.resume(job_id)
    status = run(generator, job_id)
    assert status.state == "done", status.error
    assert [s for s, data in status.record.stages.items() if data.kept] == ["analyze", "keyframes"]
    assert np.array_equal(frames_of(status.output), baseline)


def test_a_job_stopped_after_publishing_but_before_done_is_completed_without_a_second_video(
        generator, baseline, monkeypatch):
    monkeypatch.setattr(orchestrator, "STORE_RETRIES", (0.01,))
    monkeypatch.setattr(orchestrator, "WORKER_BACKOFF_S", (0.05, 0.1))
    real_finish = generator.store.finish

    def lost_done(job_id, state, **kwargs):  # the process "dies" between publishing and recording
        if state == "done":
            raise sqlite3.OperationalError("disk I/O error")
        return real_finish(job_id, state, **kwargs)

    before = outputs_snapshot(generator)
    monkeypatch.setattr(generator.store, "finish", lost_done)
    job_id = generator.submit(tiny())
    deadline = time.monotonic() + TIMEOUT
    while job_id not in generator._finished_logs:  # the worker let go of the job (its end was not stored)
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert generator.store.get(job_id).state == "running"
    published = set(outputs_snapshot(generator)) - set(before)
    video = next(generator.paths.outputs / name for name in published if name.endswith(".mp4"))
    written = video.stat().st_mtime_ns

    monkeypatch.setattr(generator.store, "finish", real_finish)
    assert generator.store.mark_interrupted() == [job_id]  # what the next start does
    assert generator.resume(job_id)
    status = run(generator, job_id)
    assert status.state == "done", status.error
    assert set(outputs_snapshot(generator)) - set(before) == published  # the same files, no second video
    assert Path(status.output) == video and video.stat().st_mtime_ns == written  # not encoded again
    assert status.record.attempt == 1  # the record of the run that made it, completed
    assert np.array_equal(frames_of(status.output), baseline)
    assert not generator.paths.job_workdir(job_id).exists()


def test_work_folders_and_history_are_pruned_by_age_and_cap(tmp_path, monkeypatch):
    gen = VideoGenerator(runtime_paths(tmp_path / "home"), start_worker=False)
    store, now = gen.store, time.time()
    states = {"old-failed": "failed", "new-failed": "failed", "done": "done", "queued": "queued",
              "interrupted": "interrupted"}
    for job_id, state in states.items():
        store.add(job_id, {"prompt": job_id})
        if state != "queued":
            store.finish(job_id, state)
        gen.paths.job_workdir(job_id).mkdir(parents=True)
        (gen.paths.state / "previews" / job_id).mkdir(parents=True)
    with sqlite3.connect(gen.paths.database) as db:
        db.execute("UPDATE jobs SET finished = ? WHERE id = 'old-failed'", (now - 8 * 86400,))
    gen.paths.job_workdir("unknown-job").mkdir()
    (gen.paths.outputs / "kept.mp4").write_bytes(b"video")
    (gen.paths.outputs / ".half.mp4.partial-999999999").write_bytes(b"half")  # its writer is long gone

    monkeypatch.setenv("STUDIO_KEEP_WORK_DAYS", "7")
    assert sorted(gen.prune_work_folders()) == ["done", "old-failed", "unknown-job"]
    assert sorted(p.name for p in (gen.paths.temp / "jobs").iterdir()) == ["interrupted", "new-failed", "queued"]

    monkeypatch.setenv("STUDIO_HISTORY_LIMIT", "2")
    assert sorted(gen.prune_history()) == ["new-failed", "old-failed"]  # the two newest finished ones stay
    assert sorted(r.id for r in store.list()) == ["done", "interrupted", "queued"]  # queued is never pruned
    assert sorted(p.name for p in (gen.paths.state / "previews").iterdir()) == ["done", "interrupted", "queued"]
    assert (gen.paths.outputs / "kept.mp4").exists()  # the user's videos are never pruned

    monkeypatch.setenv("STUDIO_HISTORY_LIMIT", "not a number")  # a bad setting falls back to the default
    assert gen.prune_history() == []
    housekeeping.remove_stale_partials(gen.paths.outputs)
    assert not (gen.paths.outputs / ".half.mp4.partial-999999999").exists()
    gen.shutdown()


# --- models -------------------------------------------------------------------------------------
@pytest.fixture
def broken_models_studio(tmp_path) -> Iterator[tuple[VideoGenerator, Path]]:
    """A studio whose models folder holds one half-downloaded and one damaged SDXL download."""
    models = tmp_path / "models"
    paths = dataclasses.replace(runtime_paths(tmp_path / "home"), models=models)
    gen = VideoGenerator(paths)
    yield gen, models
    gen.shutdown()


def test_half_downloaded_or_damaged_model_fails_with_a_re_download_hint(broken_models_studio, tmp_path):
    import shutil

    from backend.errors import SpecError
    from backend.models import store as model_store
    from backend.models.registry import MODELS, model_for

    gen, models = broken_models_studio
    ref = model_for("default", "keyframes")
    for other in MODELS.values():  # every other pipeline looks downloaded: whichever motion model the plan takes
        if not other.is_tiny and other.key != ref.key:
            (models / other.key).mkdir(parents=True)
            (models / other.key / "model_index.json").write_text("{}")
            model_store.write_marker(models / other.key, other)
    tiny_sdxl = Path(os.environ["STUDIO_MODELS_DIR"]) / "tiny" / "sdxl"
    folder = model_store.model_folder(ref, models)
    shutil.copytree(tiny_sdxl, folder)  # files present, completeness marker missing: a stopped download
    spec = tiny(model_set="default")
    with pytest.raises(SpecError, match="not on this machine: sdxl-base") as refused:  # at submit, not at run time
        gen.submit(spec)
    assert "models download sdxl-base`" in str(refused.value) and gen.history() == []

    model_store.write_marker(folder, ref)
    weights = next(folder.glob("unet/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut short after the marker
    status = run(gen, gen.submit(spec))
    assert status.state == "failed" and "incomplete or damaged" in status.error and "re-download" in status.error
    assert gen.has_worker
    assert gen.store.integrity_problems() == []


# --- the store ---------------------------------------------------------------------------------
def test_the_worker_survives_failing_store_writes(generator, baseline, monkeypatch, tmp_path):
    monkeypatch.setattr(orchestrator, "STORE_RETRIES", (0.01, 0.01, 0.01, 0.01))
    monkeypatch.setattr(orchestrator, "WORKER_BACKOFF_S", (0.05, 0.1))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "missing"))  # jobs fail at once, before any model
    store = generator.store
    failures = {"finish": 2, "claim_next": 1}

    def flaky(name: str):
        real = getattr(store, name)

        def call(*args, **kwargs):
            if failures[name] > 0:
                failures[name] -= 1
                raise sqlite3.OperationalError("database is locked")
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(store, "finish", flaky("finish"))
    monkeypatch.setattr(store, "claim_next", flaky("claim_next"))
    first = run(generator, generator.submit(tiny(seed=1)))
    second = run(generator, generator.submit(tiny(seed=2)))
    assert (first.state, second.state) == ("failed", "failed")
    assert "ffmpeg was not found" in first.error
    assert failures == {"finish": 0, "claim_next": 0}
    assert generator.has_worker


STORE_WRITER = """
import sys
from backend.jobs.store import JobStore
from backend.record import JobRecord, KeyframesRecord, StageRecords

store = JobStore(sys.argv[1])
pad = "x" * 100_000  # big rows: a write spans many database pages
i = int(sys.argv[2])
while True:
    job = f"job{i:06d}"
    store.add(job, {"prompt": job})
    stage = KeyframesRecord(seconds=1.0, steps=i, extra={"pad": pad})
    store.checkpoint(job, "keyframes", stage, {}, JobRecord(job, {"prompt": job}, stages=StageRecords(keyframes=stage)))
    store.progress(job, "motion", 0.5, "working")
    print(job, flush=True)
    i += 1
"""


def test_a_process_killed_during_store_writes_leaves_a_consistent_store(tmp_path):
    db = tmp_path / "studio.db"
    committed: list[str] = []
    rng = random.Random(5)
    for round_ in range(1, 5):
        writer = subprocess.Popen([sys.executable, "-c", STORE_WRITER, str(db), str(round_ * 10**5)],
                                  cwd=REPO, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3 + rng.random())
        os.kill(writer.pid, signal.SIGKILL)
        out, _ = writer.communicate(timeout=30)
        committed += out.split()
        store = JobStore(db)  # what the restarted studio opens
        assert store.recovered_from is None
        assert store.integrity_problems() == []
        for job in committed:  # printed only after its transactions committed: all must be there
            assert store.stages(job)["keyframes"].record.steps == int(job[3:])
        for row in store.list(limit=10**6):
            # A checkpoint and its job record are one transaction: both there, or neither.
            stages = store.stages(row.id)
            assert ("keyframes" in stages) == (row.record is not None and row.record.stages.keyframes is not None), row.id
    assert len(committed) >= 4


def damage_a_page(db: Path) -> None:
    store = JobStore(db)
    for i in range(200):
        store.add(f"job{i}", {"prompt": "x" * 2000})
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    data = bytearray(db.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 4096] = b"\xab" * 4096  # one page of garbage, as a bad sector would leave
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["not a database", "a damaged page"])
def test_an_unreadable_database_is_moved_aside_and_the_studio_starts(tmp_path, damage):
    db = tmp_path / "studio.db"
    if damage == "not a database":
        db.write_bytes(b"this is not a database" * 100)
    else:
        damage_a_page(db)
    broken = db.read_bytes()
    store = JobStore(db)
    assert store.recovered_from is not None and store.recovered_from.read_bytes() == broken  # kept to inspect
    store.add("a", {"prompt": "x"})
    assert store.get("a").state == "queued" and store.integrity_problems() == []


# --- two processes, many threads ------------------------------------------------------------------
STUDIO_PROCESS = """
import json, logging, os, sys, threading, time
from pathlib import Path

logging.basicConfig(level=logging.WARNING)
from backend.jobs import runner as job_runner
from backend.jobs.orchestrator import VideoGenerator
from backend.record import JobRecord
from backend.paths import runtime_paths
from backend.spec import JobSpec

home, run_log, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
per_thread, total = int(sys.argv[4]), int(sys.argv[5])


def fake_run(self, job_id, spec, hooks):
    # Stands in for the model stages: notes which process ran which job (O_APPEND: one line per write).
    fd = os.open(run_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{job_id} {os.getpid()}\\n".encode())
    os.close(fd)
    output = self.paths.outputs / f"{job_id}.mp4"
    output.write_bytes(b"")
    return job_runner.JobOutcome(output, output.with_suffix(".json"), JobRecord(id=job_id, spec=spec.to_dict()))


job_runner.JobRunner.run = fake_run
gen = VideoGenerator(runtime_paths(home), poll_interval=0.05)
while not go.exists():
    time.sleep(0.01)
ids, lock = [], threading.Lock()


def submit():
    for _ in range(per_thread):
        job = gen.submit(JobSpec(prompt=f"from {os.getpid()}", model_set="tiny", duration=1, fps=8, width=256,
                                 height=144))
        with lock:
            ids.append(job)


threads = [threading.Thread(target=submit) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    jobs = gen.history(limit=1000)
    if len(jobs) >= total and not any(j.is_active for j in jobs):
        break
    time.sleep(0.05)
print(json.dumps({"pid": os.getpid(), "worker": gen.has_worker, "ids": ids}))
gen.shutdown()
"""


def test_twenty_jobs_from_threads_in_two_processes_each_run_exactly_once(tmp_path):
    home, run_log, go = tmp_path / "home", tmp_path / "runs.log", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STUDIO_PROCESS, str(home), str(run_log), str(go), "5", "20"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err[-2000:]
        results.append((json.loads(out.strip().splitlines()[-1]), err))
    workers = [r for r, _ in results if r["worker"]]
    assert len(workers) == 1  # the second process was refused the worker ...
    refused = next(err for r, err in results if not r["worker"])
    assert "another studio process already runs the worker" in refused  # ... and said so
    submitted = [job for r, _ in results for job in r["ids"]]
    assert len(submitted) == len(set(submitted)) == 20
    runs = [line.split() for line in run_log.read_text().splitlines()]
    assert sorted(job for job, _ in runs) == sorted(submitted)  # every job ran, and exactly once
    assert {int(pid) for _, pid in runs} == {workers[0]["pid"]}
    store = JobStore(runtime_paths(home).database)
    assert {r.state for r in store.list(limit=100)} == {"done"}
    assert store.integrity_problems() == []
