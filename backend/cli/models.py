"""`python -m backend models list|download|verify|remove|link|unlink`: the model presets on disk.

Every kind of preset: diffusers pipelines, finishing weights (upscaler, RIFE), the planner LLM and the
IP-Adapter (``backend.models.needs.KINDS``). Downloads run through the same ``DownloadManager`` as the
UI; Ctrl-C cancels one: the files that finished are kept, and the same command resumes it.

    python -m backend models list [--json]
    python -m backend models download svd-xt [ip-adapter-sdxl ...]
    python -m backend models verify svd-xt [--checksums]   # sizes + headers; --checksums hashes all
    python -m backend models remove svd-xt
    python -m backend models link sdxl-base /data/sdxl-base-1.0   # use a folder you already have
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

GIB = 1024**3  # sizes are shown in GiB, as the registry and the planner count them
POLL_S = 0.25
CANCEL_WAIT_S = 30.0  # for the transfer to stop after Ctrl-C (a second Ctrl-C stops waiting)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list, download, verify or remove model presets",
                                   description="Model presets: status on disk, downloads, checks.")
    common = argparse.ArgumentParser(add_help=False)  # after the command: `models list --models-dir D`
    common.add_argument("--models-dir", type=Path, help="models folder (default: the studio's models/)")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="presets with sizes, status, licence and VRAM needs",
                                  parents=[common])
    listing.add_argument("--json", action="store_true")
    checks = argparse.ArgumentParser(add_help=False)
    checks.add_argument("--checksums", action="store_true",
                        help="also hash every file against the checksum the Hub gave for it (reads all of it: "
                             "minutes for a 20 GB model); without it only sizes, safetensors headers and JSON "
                             "files are checked, which takes a moment")
    download = commands.add_parser(
        "download", parents=[common, checks],
        help="download presets (resumes an interrupted download, repairs damaged files; Ctrl-C cancels)",
        description="Download presets of any kind; an interrupted or cancelled download resumes.")
    download.add_argument("names", nargs="+", metavar="name")
    for name, text, parents in (
            ("verify", "check a preset's files on disk (sizes and headers; --checksums hashes them too)",
             [common, checks]),
            ("remove", "delete a preset's files (a linked folder is only unlinked)", [common]),
            ("unlink", "stop using a folder a preset was pointed at", [common])):
        commands.add_parser(name, help=text, description=text, parents=parents).add_argument("name")
    link = commands.add_parser("link", help="point a preset at a pipeline folder already on disk", parents=[common])
    link.add_argument("name")
    link.add_argument("folder", type=Path)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, *, fetch: Callable[..., Any] | None = None) -> int:
    """Run one ``models`` command; ``fetch`` replaces the hub download (tests)."""
    from backend.errors import DownloadError, ModelFolderError
    from backend.models.needs import find_preset

    root = _models_root(args)
    try:
        if args.models_command == "list":
            return _list(root, as_json=args.json)
        if args.models_command == "download":
            return _download([find_preset(name) for name in args.names], root, fetch, checksums=args.checksums)
        ref = find_preset(args.name)
        if args.models_command == "verify":
            return _verify(ref, root, checksums=args.checksums)
        if args.models_command in ("link", "unlink"):
            _pipelines_only(ref)
        if args.models_command == "link":
            from backend.models.store import link

            print(f"{ref.key} now loads from {link(ref, args.folder, root)}")
            return 0
        if args.models_command == "unlink":
            from backend.models.store import unlink

            print(f"{ref.key}: {'unlinked' if unlink(ref, root) else 'was not linked'}")
            return 0
        from backend.models.store import remove

        print(remove(ref, root))
        return 0
    except (DownloadError, ModelFolderError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the files that finished are kept; run the same command again to resume",
              file=sys.stderr)
        return 130


def preset_rows(root: Path) -> list[dict]:
    """One row per preset of every kind: what the list command (and the Models page) shows."""
    from backend.memory.plans import min_vram_by_level
    from backend.models.needs import PIPELINE, catalog, model_status

    rows = []
    for kind, ref in catalog().values():
        state = model_status(ref, root)
        rows.append({
            "key": ref.key, "kind": kind, "label": ref.label, "repo_id": ref.repo_id, "revision": ref.revision,
            "sha256": ref.sha256, "variant": ref.variant, "size_gb": ref.size_gb, "status": state.state,
            "folder": str(state.folder) if state.folder else None,
            "on_disk_gb": round(state.bytes_on_disk / GIB, 2), "gated": ref.gated, "hub_url": ref.hub_url,
            "licence": ref.licence, "low_memory": ref.low_memory,
            "min_vram_gb": min_vram_by_level(ref) if kind == PIPELINE else {},
        })
    return rows


def _pipelines_only(ref: Any) -> None:
    from backend.errors import ModelFolderError
    from backend.models.needs import PIPELINE, kind_of

    if kind_of(ref) != PIPELINE:
        raise ModelFolderError(f"{ref.key} is not a diffusers pipeline: put its files into the models folder "
                               f"(`python -m backend models verify {ref.key}` checks them) instead of linking.")


def _models_root(args: argparse.Namespace) -> Path:
    if getattr(args, "models_dir", None):
        return Path(args.models_dir).expanduser().resolve()
    from backend.paths import runtime_paths

    return runtime_paths().models


def _list(root: Path, *, as_json: bool) -> int:
    rows = preset_rows(root)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Models in {root}")
    print(f"{'NAME':<23}{'KIND':<11}{'SIZE':>8}  {'STATUS':<11}{'MIN VRAM gpu/model/group/fp8/seq (GB)':<40}LICENCE")
    for row in rows:
        size = f"{row['size_gb']:.2f} GB" if 0 < row["size_gb"] < 0.1 else (
            f"{row['size_gb']:.1f} GB" if row["size_gb"] else "tiny")
        need = row["min_vram_gb"]
        vram = ("/".join(f"{need[level]:.1f}" for level in need) if need else
                "CPU (test set)" if size == "tiny" else "-")
        gated = f"gated ({row['hub_url']}); " if row["gated"] else ""
        print(f"{row['key']:<23}{row['kind']:<11}{size:>8}  {row['status']:<11}{vram:<40}{gated}{row['licence']}")
    return 0


def _download(refs: list[Any], root: Path, fetch: Callable[..., Any] | None, *, checksums: bool = False) -> int:
    """Each preset in turn, through the studio's download manager; Ctrl-C cancels the one running."""
    from backend.errors import DownloadError
    from backend.models.download_manager import FAILED, DownloadManager

    manager = DownloadManager(root, fetch=fetch)
    for ref in refs:
        task = manager.start(ref, checksums=checksums)
        bar = _TextBar(ref.key)
        try:
            while not task.wait(POLL_S):
                bar(task.done, task.total)
        except KeyboardInterrupt:
            manager.cancel(ref)
            bar.close()
            sys.stderr.write(f"cancelling {ref.key}: keeping the files that finished...\n")
            task.wait(CANCEL_WAIT_S)  # a second Ctrl-C stops waiting (the caller says how to resume)
            raise
        if task.state == FAILED:
            bar.close()
            raise DownloadError(task.error)
        bar(task.done, task.done or task.total)
        bar.close()
        print(f"{ref.key} is ready in {task.folder}")
    return 0


def _verify(ref: Any, root: Path, *, checksums: bool = False) -> int:
    from backend.models.needs import verify_model
    from backend.models.store import local_overrides

    problems = verify_model(ref, root, checksums=checksums)
    if not problems:
        print(f"{ref.key}: OK" + ("" if checksums or ref.is_tiny else " (sizes and headers; --checksums to hash)"))
        return 0
    print(f"{ref.key}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    if ref.key in local_overrides(root) and not ref.is_tiny:
        print(f"{ref.key} loads from a folder you linked, which is never changed here: repair its files, or "
              f"`python -m backend models unlink {ref.key}` and download it.", file=sys.stderr)
    elif ref.repo_id or ref.is_tiny:
        again = "rebuild it" if ref.is_tiny else "fetch the damaged or missing files again"
        print(f"To {again}: python -m backend models download {ref.key}" + (" --checksums" if checksums else ""),
              file=sys.stderr)
    return 1


class _TextBar:
    """A one-line byte progress bar on stderr."""

    def __init__(self, name: str, width: int = 30) -> None:
        self.name, self.width = name, width
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        filled = int(fraction * self.width)
        rate = done / max(1e-6, time.monotonic() - self.started) / 1024**2
        sys.stderr.write(f"\r{self.name} [{'#' * filled}{'.' * (self.width - filled)}] "
                         f"{done / GIB:.2f}/{(total or 0) / GIB:.2f} GB {fraction:4.0%} {rate:6.1f} MB/s")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
