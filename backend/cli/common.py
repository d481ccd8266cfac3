"""What every command shares: exit codes, the one-line error, and following a job to its end."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator
    from backend.jobs.status import JobStatus

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
REVIEW = "awaiting_review"  # the store's state of a job whose storyboard waits for the user
TAKEOVER_S = 1.0  # how often a waiting process tries to take the worker over from one that left


class CliError(Exception):
    """A one-line error for the terminal (bad input, missing file, ...)."""


def find_job(generator: "VideoGenerator", prefix: str) -> str:
    """The one job whose id starts with ``prefix`` (``jobs`` shows the first 8 characters)."""
    matches = [s.id for s in generator.history(limit=100_000) if s.id.startswith(prefix)]
    if len(matches) != 1:
        raise CliError(f"no job matches {prefix!r}" if not matches else f"{prefix!r} matches several jobs")
    return matches[0]


def follow_all(generator: "VideoGenerator", job_ids: list[str], *, as_json: bool) -> int:
    """Wait for the jobs (Ctrl-C cancels them), print each outcome, and say how it went in the exit code."""
    if not generator.has_worker:
        print("note: another studio process is running the queue; waiting for it", file=sys.stderr)
    results = []
    try:
        for job_id in job_ids:
            results.append(_follow(generator, job_id, quiet=as_json))
    except KeyboardInterrupt:
        for job_id in job_ids:
            generator.cancel(job_id)
        generator.shutdown()
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    generator.shutdown()
    for status in results:
        if as_json:
            print(json.dumps(job_summary(status), ensure_ascii=False))
        elif status.state == "done":
            print(status.output)
        elif status.state == REVIEW:
            print(f"job {status.id} is waiting for review: python -m backend storyboard {status.id[:8]} "
                  f"(edit), python -m backend continue {status.id[:8]} (animate)")
        else:
            print(f"error: job {status.id} {status.state}: {status.error or ''}".rstrip(": "), file=sys.stderr)
    if all(s.state in ("done", REVIEW) for s in results):
        return EXIT_OK
    return EXIT_CANCELLED if any(s.state == "cancelled" for s in results) else EXIT_FAILED


def wait_for_review(generator: "VideoGenerator", job_id: str, *, quiet: bool) -> None:
    """Follow a job that was queued again for a storyboard edit until it waits for review again."""
    try:
        status = _follow(generator, job_id, quiet=quiet)
    except KeyboardInterrupt:
        generator.cancel(job_id)
        raise
    if status.state != REVIEW:
        raise CliError(f"job {job_id[:8]} {status.state}: {status.error or 'the keyframe was not redrawn'}")


def _follow(generator: "VideoGenerator", job_id: str, *, quiet: bool) -> "JobStatus":
    """Wait for a job, drawing a one-line progress bar on stderr.

    While another process runs the queue, this one tries now and then to take the worker over (the other
    may leave); a job of ours that the departing worker could not hand back is resumed here, once.
    """
    interactive = sys.stderr.isatty() and not quiet
    last_line = ""
    next_takeover = time.monotonic() + TAKEOVER_S
    resumed = False
    while True:
        status = generator.status(job_id)
        if status.state == "interrupted" and not resumed and generator.has_worker:
            resumed = generator.requeue(job_id)  # its worker died under it: carry on from its finished stages
            continue
        if not status.is_active:
            break
        if not generator.has_worker and time.monotonic() >= next_takeover:
            next_takeover = time.monotonic() + TAKEOVER_S
            if generator.start():
                print("note: took over the queue from a studio process that stopped", file=sys.stderr)
        if interactive:
            line = progress_line(status)
            if line != last_line:
                sys.stderr.write("\r" + line.ljust(100)[:100])
                sys.stderr.flush()
                last_line = line
        time.sleep(0.25)
    if interactive:
        sys.stderr.write("\r" + " " * 100 + "\r")
    return status


def progress_line(status: "JobStatus") -> str:
    width = 24
    filled = int(status.fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    eta = f" ETA {format_seconds(status.eta_seconds)}" if status.eta_seconds is not None else ""
    return f"[{bar}] {status.fraction:4.0%} {status.stage}: {status.message}{eta}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def job_summary(status: "JobStatus") -> dict[str, Any]:
    """The job as ``--json`` prints it: id, outcome, files, seed, per-stage seconds."""
    record = status.record
    return {
        "id": status.id,
        "status": status.state,
        "output": status.output,
        "sidecar": status.sidecar,
        "error": status.error,
        "seed": status.spec.get("seed"),
        "format": record.format if record is not None else None,
        "stages": record.stage_seconds() if record is not None else {},
        "seconds": round(status.elapsed, 3) if status.elapsed is not None else None,
        "note": record.note if record is not None else None,
    }
