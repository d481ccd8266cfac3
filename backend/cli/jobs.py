"""``jobs``, ``resume`` and ``cancel``: the history, and acting on one job of it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from backend.cli.common import EXIT_OK, CliError, find_job, follow_all, job_summary

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator
    from backend.jobs.status import JobStatus

NO_WORKER = "no studio process is running it any more"  # the message of a ``running`` row whose worker is gone


def add_parser(sub: Any) -> None:
    resume = sub.add_parser("resume", help="resume an interrupted, failed or cancelled job (finished stages are kept)")
    resume.add_argument("job_id", help="job id (or its first 8 characters, as `jobs` shows)")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(run=run_resume)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=run_cancel)

    jobs = sub.add_parser("jobs", help="list jobs (history and queue)")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(run=run_jobs)


def run_resume(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator  # loads the job layer only for commands that need it

    generator = VideoGenerator()
    job_id = find_job(generator, args.job_id)
    if not generator.requeue(job_id):
        state = generator.status(job_id).state
        generator.shutdown()
        raise CliError(f"job {job_id[:8]} is {state}; only interrupted, failed or cancelled jobs can be resumed")
    return follow_all(generator, [job_id], as_json=args.json)


def run_cancel(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator

    generator = VideoGenerator(start_worker=False)
    job_id = find_job(generator, args.job_id)
    status = seen(generator, [generator.status(job_id)])[0]
    if status.message == NO_WORKER:
        raise CliError(f"job {job_id[:8]} was interrupted ({NO_WORKER}); there is nothing to cancel "
                       f"(`resume {job_id[:8]}` carries on from its finished stages)")
    if not generator.cancel(job_id):
        state = generator.status(job_id).state
        raise CliError(f"job {job_id[:8]} is already {state}; there is nothing to cancel")
    print(f"cancel requested for {job_id[:8]}")
    return EXIT_OK


def run_jobs(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator
    from backend.jobs.rows import readable

    generator = VideoGenerator(start_worker=False)
    jobs = seen(generator, generator.history(limit=args.limit))
    if generator.store.read_only:
        print(f"note: The job database {generator.store.path} is read-only: {generator.store.read_only}; "
              "the history is shown, nothing can be changed", file=sys.stderr)
    if args.json:  # readable(): text that is not valid Unicode (an old row) must not stop the output
        print(json.dumps(readable([job_summary(s) | {"prompt": s.spec.get("prompt")} for s in jobs]),
                         ensure_ascii=False, default=str))
        return EXIT_OK
    if not jobs:
        print("no jobs yet")
    for status in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(status.created))
        prompt = str(status.spec.get("prompt", ""))
        print(readable(f"{status.id[:8]}  {when}  {status.state:<11} {prompt[:50]!r}  "
                       f"{status.output or status.error or ''}"))
    return EXIT_OK


def seen(generator: "VideoGenerator", jobs: list["JobStatus"]) -> list["JobStatus"]:
    """The jobs as they really are: ``running`` with no worker alive (killed) shows as interrupted.

    Only the view changes; the next worker to start marks them in the store.
    """
    if not any(s.state == "running" for s in jobs) or generator.has_worker or generator.store.worker_active():
        return jobs
    return [replace(s, state="interrupted", message=NO_WORKER) if s.state == "running" else s for s in jobs]
