"""``jobs``, ``resume`` and ``cancel``: the history, and acting on one job of it."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from backend.cli.common import EXIT_OK, CliError, find_job, follow_all, job_summary


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
    if not generator.cancel(job_id):
        raise CliError(f"job {job_id[:8]} is not queued or running")
    print(f"cancel requested for {job_id[:8]}")
    return EXIT_OK


def run_jobs(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator

    generator = VideoGenerator(start_worker=False)
    jobs = generator.history(limit=args.limit)
    if args.json:
        print(json.dumps([job_summary(s) | {"prompt": s.spec.get("prompt")} for s in jobs], ensure_ascii=False))
        return EXIT_OK
    if not jobs:
        print("no jobs yet")
    for status in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(status.created))
        prompt = status.spec.get("prompt", "")
        print(f"{status.id[:8]}  {when}  {status.state:<11} {prompt[:50]!r}  {status.output or status.error or ''}")
    return EXIT_OK
