"""``fleet``: run a batch manifest on a Ray cluster, one worker per GPU (``./launch.sh fleet``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="run a batch manifest on a Ray cluster (one worker per GPU)")
    fleet.add_argument("--manifest", type=Path, required=True, help="JSON file with a list of job specs")
    fleet.add_argument("--address", default="local",
                       help="'local' starts a private Ray cluster here; 'auto' joins the running one; or HOST:PORT")
    fleet.add_argument("--gpus-per-worker", type=float, default=1.0,
                       help="GPUs each worker holds (0 = CPU workers, for tests and machines without a GPU)")
    fleet.add_argument("--workers", type=int, help="at most this many workers (default: one per GPU)")
    fleet.add_argument("--max-attempts", type=int, default=3, help="tries per job when its worker dies")
    fleet.add_argument("--out", type=Path, help="where the videos go (default: the studio's outputs/)")
    fleet.add_argument("--json", action="store_true", help="one JSON line per job")
    fleet.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from backend.cli.common import EXIT_FAILED, EXIT_OK, CliError
    from backend.cli.manifest import load_manifest
    from backend.fleet.jobs import DONE, SKIPPED, prepare
    from backend.paths import runtime_paths

    if args.gpus_per_worker < 0 or (args.workers is not None and args.workers < 1) or args.max_attempts < 1:
        raise CliError("--gpus-per-worker must be ≥ 0, --workers and --max-attempts ≥ 1")
    paths = runtime_paths().ensure()
    items = load_manifest(args.manifest, paths.uploads)  # CliError for an unusable file
    jobs, invalid = prepare(items)
    out = (args.out or paths.outputs).expanduser().resolve()
    show = _printer(args.json, sys.stdout)
    for record in invalid:
        show(record)
    records = list(invalid)
    if jobs:
        from backend.fleet.driver import Fleet, FleetError, FleetOptions

        options = FleetOptions(out=out, address=args.address, gpus_per_worker=args.gpus_per_worker,
                               workers=args.workers, max_attempts=args.max_attempts)
        records_out, sys.stdout = sys.stdout, sys.stderr  # Ray's own notices (a worker died) stay off stdout
        try:
            with Fleet(options) as fleet:
                records += fleet.run(jobs, on_record=show)
        except FleetError as exc:
            raise CliError(str(exc)) from exc
        finally:
            sys.stdout = records_out
    done = sum(r.status in (DONE, SKIPPED) for r in records)
    print(f"fleet: {done} of {len(records)} job(s) done ({sum(r.status == SKIPPED for r in records)} skipped "
          f"as already done); videos in {out}", file=sys.stderr)
    return EXIT_OK if done == len(records) else EXIT_FAILED


def _printer(as_json: bool, stream: Any):  # type: ignore[no-untyped-def]
    def show(record: Any) -> None:
        if as_json:
            line = json.dumps(record.to_dict(), ensure_ascii=False)
        elif record.status in ("done", "skipped"):
            line = (f"{record.status:8} #{record.index} {record.output}  ({record.worker or 'earlier run'}, "
                    f"{record.seconds or 0:.1f} s)")
        else:
            line = f"{record.status:8} #{record.index} {record.error}"
        print(line, file=stream, flush=True)
    return show
