"""``storyboard`` and ``continue``: review a job's keyframes before motion, edit them, then animate.

    python -m backend generate --review --prompt "..."        # stops with the keyframes: awaiting_review
    python -m backend storyboard JOB                           # the keyframes: time, prompt, seed, file
    python -m backend storyboard JOB --regenerate 2 --prompt "..." [--seed N | --new-seed]
    python -m backend storyboard JOB --replace 3 --image my.png
    python -m backend storyboard JOB --delete 2 | --insert 1.5 --prompt "..." | --move 2 --time 1.2
    python -m backend continue JOB                             # animate: motion, assemble, finish

Keyframes are numbered from 1, as the studio shows them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.cli.common import EXIT_OK, CliError, find_job, follow_all, wait_for_review
from backend.cli.manifest import stored_input

if TYPE_CHECKING:  # pragma: no cover
    from backend.jobs.orchestrator import VideoGenerator
    from backend.record import Storyboard


def add_parser(sub: Any) -> None:
    board = sub.add_parser("storyboard", help="show or edit the keyframes of a job waiting for review")
    board.add_argument("job_id", help="job id (or its first 8 characters, as `jobs` shows)")
    edit = board.add_mutually_exclusive_group()
    edit.add_argument("--regenerate", type=int, metavar="I", help="draw keyframe I again (1 = the first)")
    edit.add_argument("--replace", type=int, metavar="I", help="put --image in place of keyframe I")
    edit.add_argument("--delete", type=int, metavar="I", help="remove keyframe I (not the first or last)")
    edit.add_argument("--insert", type=float, metavar="SECONDS", help="add a keyframe at this time (with --prompt)")
    edit.add_argument("--move", type=int, metavar="I", help="move keyframe I to --time SECONDS")
    board.add_argument("--prompt", help="the keyframe's new prompt (--regenerate, --insert)")
    seeds = board.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="the keyframe's seed (--regenerate, --insert)")
    seeds.add_argument("--new-seed", action="store_true", help="a new random seed (--regenerate)")
    board.add_argument("--image", type=Path, help="image file for --replace")
    board.add_argument("--time", type=float, help="seconds, for --move")
    board.add_argument("--json", action="store_true", help="print the storyboard as JSON")
    board.set_defaults(run=run_storyboard)

    go = sub.add_parser("continue", help="animate a reviewed storyboard: motion, assemble, finish")
    go.add_argument("job_id")
    go.add_argument("--json", action="store_true", help="print the job record as JSON")
    go.set_defaults(run=run_continue)


def run_storyboard(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator  # loads the job layer only when it runs

    generator = VideoGenerator()
    try:
        job_id = find_job(generator, args.job_id)
        result = _edit(args, generator, job_id)
        if result is not None and result.needs_gpu:  # a keyframe is drawn: wait until it is back for review
            wait_for_review(generator, job_id, quiet=args.json)
        board = generator.storyboard_editor().load(job_id)[1]
    finally:
        generator.shutdown()
    _print(board, generator.storyboard_editor().keyframe_files(job_id, len(board.frames)), job_id, args.json)
    return EXIT_OK


def run_continue(args: argparse.Namespace) -> int:
    from backend.jobs.orchestrator import VideoGenerator

    generator = VideoGenerator()
    try:
        job_id = find_job(generator, args.job_id)
        generator.storyboard_editor().animate(job_id)
    except BaseException:
        generator.shutdown()
        raise
    return follow_all(generator, [job_id], as_json=args.json)


def _edit(args: argparse.Namespace, generator: "VideoGenerator", job_id: str) -> Any:
    editor = generator.storyboard_editor()
    if args.regenerate is not None:
        return editor.regenerate(job_id, args.regenerate - 1, prompt=args.prompt, seed=args.seed,
                                 new_seed=args.new_seed)
    if args.replace is not None:
        if args.image is None:
            raise CliError("--replace needs --image FILE.")
        stored = stored_input(args.image, "image", generator.paths.uploads)
        return editor.replace(job_id, args.replace - 1, Path(stored))
    if args.delete is not None:
        return editor.delete(job_id, args.delete - 1)
    if args.insert is not None:
        if not args.prompt:
            raise CliError("--insert needs --prompt TEXT: what the new keyframe shows.")
        return editor.insert(job_id, args.insert, args.prompt, seed=args.seed)
    if args.move is not None:
        if args.time is None:
            raise CliError("--move needs --time SECONDS.")
        return editor.move(job_id, args.move - 1, args.time)
    if args.prompt or args.seed is not None or args.new_seed or args.image or args.time is not None:
        raise CliError("--prompt, --seed, --image and --time go with an edit (--regenerate, --replace, ...).")
    return None


def _print(board: "Storyboard", files: list[Path], job_id: str, as_json: bool) -> None:
    if as_json:
        document = board.to_dict()
        document["job"] = job_id
        document["files"] = [str(p) for p in files]
        print(json.dumps(document, ensure_ascii=False))
        return
    print(f"job {job_id[:8]}: {len(board.frames)} keyframes, planned by {board.planner}"
          f"{' (approved)' if board.approved else ''}")
    for number, (frame, path) in enumerate(zip(board.frames, files), start=1):
        seed = f"seed {frame.seed}" if frame.seed is not None else frame.source
        state = "" if path.is_file() else "  [no image yet]"
        print(f"  {number}. {frame.time:6.2f} s  {seed}: {frame.prompt}{state}")
    print(f"then: python -m backend continue {job_id[:8]}", file=sys.stderr)
