"""The job store under the faults a tester found: each ends with the right result or one sentence.

How the faults are made real:
- damaged twice within one second: garbage over the database twice, the clock naming the copy frozen;
- an undecodable prompt: the byte 0xE9 passed in argv as bytes (Python turns it into '\\udce9'); old
  rows are written the way the previous release wrote them (``json.dumps`` of that text), and the CLI
  runs with ``PYTHONIOENCODING=utf-8`` (strict, as in the tester's terminal; C.UTF-8 hides the crash);
- read-only: as the tester did it, ``chmod 444`` on the database and ``555`` on its folder, with the
  CLI run as the unprivileged user ``nobody`` (root ignores permissions; skipped when not root); in
  process, the store is told its file is unwritable and SQLite's own ``mode=ro`` refuses the writes;
- a full disk: in process, ``PRAGMA max_page_count`` on every connection (SQLite's own SQLITE_FULL,
  "database or disk is full"); end to end, a tiny tmpfs filled to the last byte in a private mount
  namespace (real ENOSPC; skipped where ``unshare`` is not allowed);
- a killed worker: a process that holds the worker lock as the orchestrator does, killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from ui_support import idle_studio, new_app, open_page, run, studio_home, texts  # noqa: F401 - fixtures

from backend.errors import DISK_FULL_ADVICE, DiskFull, SpecError
from backend.jobs import database
from backend.jobs import store as store_module
from backend.jobs.orchestrator import VideoGenerator
from backend.jobs.store import JobStore, StoreFull, StoreReadOnly
from backend.memory import HardwareProfile
from backend.paths import runtime_paths
from backend.record import AnalyzeRecord, JobRecord, StageRecords
from backend.spec import JobSpec

pytestmark = [pytest.mark.e2e]  # CLI subprocesses; the in-process tests are also marked unit, the page ui

REPO = Path(__file__).resolve().parent.parent
T = ["--models", "tiny", "--duration", "1", "--fps", "8", "--size", "256x144"]
CPU = HardwareProfile(None, None, 0.0, 0.0, 16.0, 12.0, 2)
NOBODY = "65534"  # the unprivileged user (nobody/nogroup)
SURROGATE_PROMPT = "caf\udce9"  # what Python makes of the argv bytes b"caf\xe9" in a UTF-8 locale


def cli(home: Path, *argv: str | bytes, user: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8",
               PYTHONDONTWRITEBYTECODE="1")
    prefix = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups"] if user else []
    result = subprocess.run([*prefix, sys.executable, "-m", "backend", *argv], cwd=REPO, env=env,
                            capture_output=True, timeout=timeout)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr, result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def tiny_spec(prompt: str) -> dict:
    return JobSpec(prompt=prompt, model_set="tiny", duration=1, fps=8, width=256, height=144, seed=7).to_dict()


def generator(home: Path) -> VideoGenerator:
    return VideoGenerator(runtime_paths(home), hardware=CPU, start_worker=False)


# --- 2. a database damaged twice within one second ------------------------------------------------
@pytest.mark.unit
def test_a_database_damaged_twice_within_one_second_keeps_both_copies(tmp_path, monkeypatch):
    monkeypatch.setattr(database.time, "strftime", lambda *args: "20260101-120000")  # one and the same second
    db = tmp_path / "studio.db"
    kept = []
    for damage in (b"first damage " * 100, b"second damage " * 100):
        db.write_bytes(damage)
        store = JobStore(db)
        kept.append((store.recovered_from, damage))
        store.add(uuid.uuid4().hex, {"prompt": "x"})
    assert [copy.name for copy, _ in kept] == ["studio.db.broken-20260101-120000", "studio.db.broken-20260101-120000-2"]
    assert all(copy.read_bytes() == damage for copy, damage in kept)
    # A damaged file's -wal and -shm (SQLite removes those of a file it cannot read at all) go with it.
    for round_ in (1, 2):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").write_bytes(f"round {round_}{suffix}".encode())
        copy = database.move_aside(db, sqlite3.DatabaseError("damaged"))
        assert [Path(f"{copy}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")] == [
            f"round {round_}{suffix}".encode() for suffix in ("", "-wal", "-shm")]
    assert len(list(tmp_path.glob("studio.db.broken-*"))) == 2 + 2 * 3 and not db.exists()


# --- 5. an undecodable prompt ---------------------------------------------------------------------
def test_generate_refuses_an_undecodable_prompt_in_one_line(tmp_path):
    result = cli(tmp_path, "generate", "--prompt", b"caf\xe9", *T)
    assert result.returncode == 2
    assert "prompt" in one_error_line(result) and "UTF-8" in result.stderr
    assert JobStore(runtime_paths(tmp_path).database).count() == 0  # refused before anything was queued


@pytest.mark.unit
@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "enhanced_prompt"])
def test_the_spec_refuses_text_that_is_not_utf8(field):
    values = {"prompt": "a red fox", field: SURROGATE_PROMPT}
    with pytest.raises(SpecError) as refused:
        JobSpec(**values).validate()
    assert refused.value.field == field and "UTF-8" in str(refused.value)
    with pytest.raises(SpecError):
        JobSpec.from_dict({**values, field: "\ud800 alone"}).validate()


def old_rows(db: Path) -> dict[str, str]:
    """Rows as the previous release (or another tool, or a damaged disk) left them."""
    store = JobStore(db)
    failed = ("surrogate", "bad_json", "wrong_shape", "bad_record", "bad_bytes")
    ids = {name: uuid.uuid4().hex for name in (*failed, "good")}
    for name, job_id in ids.items():
        store.add(job_id, tiny_spec(SURROGATE_PROMPT if name == "surrogate" else f"{name} prompt"))
        if name in failed:
            store.finish(job_id, "failed", error="Unexpected error (TypeError: TextEncodeInput must be ...)")
    analyzed = AnalyzeRecord(seconds=0.1, enhanced_prompt=SURROGATE_PROMPT)
    store.checkpoint(ids["surrogate"], "analyze", analyzed, {},
                     JobRecord(ids["surrogate"], tiny_spec(SURROGATE_PROMPT), stages=StageRecords(analyze=analyzed)))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE jobs SET spec = '{not json' WHERE id = ?", (ids["bad_json"],))
        conn.execute("UPDATE jobs SET spec = '[1, 2]', created = 'yesterday' WHERE id = ?", (ids["wrong_shape"],))
        conn.execute("UPDATE jobs SET record = 'garbage' WHERE id = ?", (ids["bad_record"],))
        conn.execute("UPDATE jobs SET message = CAST(X'636166E9' AS TEXT) WHERE id = ?", (ids["bad_bytes"],))
        conn.execute("INSERT INTO stages (job_id, name, state, checkpoint) VALUES (?, 'analyze', 'done', '{oops')",
                     (ids["bad_json"],))
    return ids


@pytest.mark.unit
def test_bad_rows_never_break_the_history_and_can_be_resumed_or_deleted(tmp_path):
    ids = old_rows(runtime_paths(tmp_path).ensure().database)
    gen = generator(tmp_path)
    rows = {row.id: row for row in gen.store.list()}
    assert set(rows) == set(ids.values())
    json.dumps([row.spec for row in rows.values()], ensure_ascii=False).encode("utf-8")  # all of it encodable
    assert rows[ids["surrogate"]].spec["prompt"] == "caf\ufffd"
    assert rows[ids["surrogate"]].record.stages.analyze.enhanced_prompt == "caf\ufffd"
    assert gen.store.stages(ids["surrogate"])["analyze"].record.enhanced_prompt == "caf\ufffd"
    for name in ("bad_json", "wrong_shape"):
        placeholder = rows[ids[name]]
        assert placeholder.spec == {} and placeholder.state == "failed" and "could not be read" in placeholder.error
    assert rows[ids["wrong_shape"]].created == 0.0
    assert rows[ids["bad_record"]].record is None and rows[ids["bad_record"]].spec["prompt"] == "bad_record prompt"
    assert rows[ids["bad_bytes"]].message == "caf\ufffd"
    assert gen.store.stages(ids["bad_json"]) == {}  # an unreadable checkpoint: that stage just runs again
    assert [s.id for s in gen.history()] and gen.resumable_stages(ids["bad_json"]) == []
    assert gen.requeue(ids["surrogate"]) and gen.delete(ids["bad_json"]) and gen.delete(ids["wrong_shape"])
    assert gen.store.claim_next().id == ids["good"]  # queued before it
    assert JobSpec.from_dict(gen.store.claim_next().spec).validate().prompt == "caf\ufffd"  # it runs again


def test_jobs_lists_every_stored_row_including_bad_ones(tmp_path):
    ids = old_rows(runtime_paths(tmp_path).ensure().database)
    listed = cli(tmp_path, "jobs", "--json")
    assert listed.returncode == 0 and listed.stderr == ""
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert set(jobs) == set(ids.values()) and jobs[ids["surrogate"]]["prompt"] == "caf\ufffd"
    plain = cli(tmp_path, "jobs")
    assert plain.returncode == 0 and all(job_id[:8] in plain.stdout for job_id in ids.values())


@pytest.mark.ui
def test_the_queue_page_shows_bad_rows_and_resumes_or_deletes_them(idle_studio):  # noqa: F811 - fixture
    ids = old_rows(runtime_paths().database)
    at = open_page(run(new_app()), "app_pages/job_queue.py")
    page = texts(at)
    assert not at.error and "Could not" not in page, page
    assert "caf\ufffd" in page and "good prompt" in page and "could not be read" in page
    at.button(key=f"q_requeue_{ids['surrogate']}").click()
    run(at)
    at.button(key=f"q_delete_{ids['bad_json']}").click()
    run(at)
    assert not at.error, [e.value for e in at.error]
    store = JobStore(runtime_paths().database)
    assert store.get(ids["surrogate"]).state == "queued" and store.get(ids["bad_json"]) is None


# --- 8. a read-only database ----------------------------------------------------------------------
@pytest.mark.unit
def test_a_read_only_database_is_read_and_refuses_writes_in_one_sentence(tmp_path, monkeypatch):
    db = tmp_path / "studio.db"
    JobStore(db).add("a", {"prompt": "kept"})
    before = db.read_bytes()
    monkeypatch.setattr(store_module, "unwritable", lambda path: f"its folder {path.parent} is not writable")
    store = JobStore(db)
    assert store.read_only and [r.spec["prompt"] for r in store.list()] == ["kept"]
    for write in (lambda: store.add("b", {}), lambda: store.request_cancel("a"), lambda: store.mark_interrupted()):
        with pytest.raises(StoreReadOnly, match=r"^The job database .* is read-only: its folder"):
            write()
    with pytest.raises(StoreReadOnly), database.connect(db, read_only=True) as conn:  # SQLite's own refusal
        conn.execute("DELETE FROM jobs")
    assert db.read_bytes() == before


@pytest.fixture
def nobody_home():
    """A studio home for the user ``nobody``, in a folder it can reach (pytest's tmp is root-only)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to run the CLI as another user) and setpriv")
    home = Path(tempfile.mkdtemp(prefix="studio-ro-"))
    home.chmod(0o755)
    yield home
    subprocess.run(["chmod", "-R", "u+w", str(home)], check=False)
    shutil.rmtree(home, ignore_errors=True)


def test_jobs_and_generate_on_a_read_only_folder_as_the_tester_ran_them(nobody_home):
    paths = runtime_paths(nobody_home).ensure()
    store = JobStore(paths.database)
    store.add("a" * 32, tiny_spec("a job from before"))
    (paths.state / "worker.lock").touch()  # left by the earlier runs, as in the tester's folder
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(nobody_home)], check=True)
    paths.database.chmod(0o444)
    paths.state.chmod(0o555)
    before = paths.database.read_bytes()
    listed = cli(nobody_home, "jobs", user=NOBODY)
    assert listed.returncode == 0 and "a job from before" in listed.stdout
    assert listed.stderr.startswith("note: The job database ") and "is read-only" in listed.stderr
    assert len(listed.stderr.splitlines()) == 1
    assert json.loads(cli(nobody_home, "jobs", "--json", user=NOBODY).stdout)[0]["status"] == "queued"
    generated = cli(nobody_home, "generate", "--prompt", "a red fox", *T, user=NOBODY)
    assert generated.returncode in (1, 2) and "The job database" in one_error_line(generated)
    assert "is read-only" in generated.stderr
    cancelled = cli(nobody_home, "cancel", "aaaaaaaa", user=NOBODY)
    assert cancelled.returncode in (1, 2) and "is read-only" in one_error_line(cancelled)
    assert paths.database.read_bytes() == before and not (paths.state / "studio.db-wal").exists()


# --- 4. a full disk -------------------------------------------------------------------------------
@pytest.mark.unit
def test_opening_a_current_database_writes_nothing(tmp_path, monkeypatch):
    db = tmp_path / "studio.db"
    JobStore(db).add("a", {"prompt": "kept"})
    real_connect = sqlite3.connect

    def no_writes(*args, **kwargs):  # any write (schema, user_version, journal mode) now fails
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA query_only = ON")
        return conn

    monkeypatch.setattr(sqlite3, "connect", no_writes)
    store = JobStore(db)
    assert store.read_only is None and store.recovered_from is None
    assert [r.id for r in store.list()] == ["a"] and store.count() == 1


@pytest.mark.unit
def test_a_full_database_raises_disk_full_and_still_reads(tmp_path, monkeypatch):
    db = tmp_path / "studio.db"
    JobStore(db).add("a", {"prompt": "kept"})
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    real_connect = sqlite3.connect

    def full(*args, **kwargs):  # the database cannot grow by one page: SQLITE_FULL on the next big write
        conn = real_connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", full)
    store = JobStore(db)
    big = "x" * 200_000
    writes = {
        "add": lambda: store.add("b", {"prompt": big}),
        "finish": lambda: store.finish("a", "failed", error=big),
        "checkpoint": lambda: store.checkpoint("a", "analyze", AnalyzeRecord(seconds=1.0, enhanced_prompt=big), {},
                                               JobRecord("a", {"prompt": big})),
        "record_timing": lambda: [store.record_timing(f"key{i}" + "y" * 1000, 1.0) for i in range(200)],
    }
    for name, write in writes.items():
        with pytest.raises(StoreFull) as full_disk:
            write()
        error = full_disk.value
        assert isinstance(error, DiskFull) and isinstance(error, sqlite3.OperationalError), name
        assert str(error).startswith(DISK_FULL_ADVICE) and "database or disk is full" in str(error), name
    assert [r.id for r in store.list()] == ["a"] and store.get("a").state == "queued"


@pytest.fixture
def namespace_allowed():
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs a private mount namespace (unshare -m) for a small tmpfs")


FULL_DISK = """
set -e
mount -t tmpfs -o size=1m tmpfs "$HOME_DIR"
"$PY" -c 'import sys; from backend.jobs.store import JobStore; from backend.paths import runtime_paths
p = runtime_paths(sys.argv[1]).ensure(); s = JobStore(p.database); s.add("a" * 32, {"prompt": "before the disk filled"})
(p.state / "worker.lock").touch()' "$HOME_DIR"
mount -t tmpfs -o size=1m tmpfs "$HOME_DIR/outputs/.studio/logs"  # the CLI's log file has room (see the report)
dd if=/dev/zero of="$HOME_DIR/filler" bs=1k 2>/dev/null || true
for command in "jobs" "jobs --json" "cancel aaaaaaaa"; do
  name=$(echo $command | tr ' ' _)
  set +e
  STUDIO_HOME="$HOME_DIR" "$PY" -m backend $command >"$OUT/$name.out" 2>"$OUT/$name.err"
  echo $? >"$OUT/$name.rc"
  set -e
done
"""


def test_jobs_reads_on_a_really_full_disk_and_a_write_says_so(tmp_path, namespace_allowed):
    home, out = tmp_path / "home", tmp_path / "out"
    for folder in (home, out):
        folder.mkdir()
    env = dict(os.environ, HOME_DIR=str(home), OUT=str(out), PY=sys.executable, HF_HUB_OFFLINE="1",
               PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", FULL_DISK], cwd=REPO, env=env,
                   check=True, timeout=120)

    def result(name: str) -> tuple[int, str, str]:
        return (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                (out / f"{name}.err").read_text())

    rc, stdout, stderr = result("jobs")
    assert rc == 0 and "before the disk filled" in stdout and stderr == "", stderr
    rc, stdout, stderr = result("jobs_--json")
    assert rc == 0 and json.loads(stdout)[0]["status"] == "queued" and stderr == "", stderr
    rc, _, stderr = result("cancel_aaaaaaaa")
    assert rc != 0 and stderr.startswith("error: The disk is full") and len(stderr.splitlines()) == 1, stderr


# --- 11. a killed worker, and cancelling a job that has ended -------------------------------------
LOCK_HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what VideoGenerator._acquire_worker_lock does
print("locked", flush=True)
time.sleep(600)
"""


def test_jobs_shows_the_running_job_of_a_killed_worker_as_interrupted(tmp_path):
    paths = runtime_paths(tmp_path).ensure()
    store = JobStore(paths.database)
    store.add("b" * 32, tiny_spec("running when its worker was killed"))
    store.claim_next()
    worker = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(paths.state / "worker.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "locked"
        alive = json.loads(cli(tmp_path, "jobs", "--json").stdout)
        assert alive[0]["status"] == "running"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    killed = json.loads(cli(tmp_path, "jobs", "--json").stdout)
    assert killed[0]["status"] == "interrupted"
    assert "interrupted" in cli(tmp_path, "jobs").stdout
    assert store.get("b" * 32).state == "running"  # only shown so: the next worker to start marks it
    refused = cli(tmp_path, "cancel", "bbbbbbbb")
    assert refused.returncode != 0 and "interrupted" in one_error_line(refused)


def test_cancel_of_a_job_that_has_ended_says_so_and_fails(tmp_path):
    paths = runtime_paths(tmp_path).ensure()
    store = JobStore(paths.database)
    for job_id in ("c" * 32, "d" * 32, "e" * 32):
        store.add(job_id, tiny_spec("x"))
    store.request_cancel("c" * 32)
    store.claim_next()  # the oldest queued one: "d..."
    store.finish("d" * 32, "done", output="video.mp4")
    first = cli(tmp_path, "cancel", "eeeeeeee")
    assert first.returncode == 0 and "cancel requested" in first.stdout
    for job_id, state in (("e", "cancelled"), ("c", "cancelled"), ("d", "done")):
        again = cli(tmp_path, "cancel", job_id * 8)
        assert again.returncode != 0 and f"already {state}" in one_error_line(again)
    assert store.request_cancel("c" * 32) == "already cancelled" and not generator(tmp_path).cancel("d" * 32)


@pytest.mark.unit
def test_the_worker_lock_check_lets_go_at_once(tmp_path):
    paths = runtime_paths(tmp_path).ensure()
    store = JobStore(paths.database)
    assert store.worker_active() is False and not (paths.state / "worker.lock").exists()  # nothing created
    gen = VideoGenerator(paths, hardware=CPU, start_worker=False)
    assert gen._acquire_worker_lock()  # noqa: SLF001 - the orchestrator's own lock
    try:
        assert store.worker_active() is True
    finally:
        gen.shutdown()
    assert store.worker_active() is False
    other = VideoGenerator(paths, hardware=CPU, start_worker=False)
    assert other._acquire_worker_lock()  # noqa: SLF001 - the check did not keep the lock
    other.shutdown()
