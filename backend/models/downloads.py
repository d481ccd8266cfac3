"""Downloading a preset of any kind from the Hugging Face Hub into ``models/<key>``, with byte progress.

``snapshot_download`` fetches only the preset's ``allow_patterns`` into a local folder, whatever the kind
(a diffusers pipeline, one weights file, the planner LLM, the IP-Adapter: ``needs.KINDS``), so one byte
bar counts every file of a model. Files that finished are kept and skipped next time: an interrupted or
cancelled download resumes (the hub writes each file under a temporary name and renames it when whole).
Disk space is checked first, the completeness marker is written only after success and never after a
cancel, and every hub failure a user can fix (offline, gated, not found, bad revision, disk full,
network) becomes one sentence saying what to do. A Hugging Face token for gated models is kept in
huggingface_hub's own token store (``save_token``), never by the studio.
"""

from __future__ import annotations

import errno
import importlib
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from backend.errors import DownloadError
from backend.models import needs, store
from backend.models.registry import ModelRef

log = logging.getLogger(__name__)

GIB = store.GIB
SPACE_MARGIN_BYTES = GIB // 2  # room for the hub's temporary files and the marker
PROGRESS_INTERVAL_S = 0.25
NETWORK_BAR_DESC = "Downloading bytes"  # huggingface_hub 2.x: network transfer, duplicates the disk-bytes bar

Progress = Callable[[int, int | None], None]  # (bytes done, bytes expected)
Fetch = Callable[..., Any]  # huggingface_hub.snapshot_download or a test double
TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class DownloadCancelled(DownloadError):
    """The user cancelled a download (a button, Ctrl-C): the files that finished are kept, no marker is written."""

    def __init__(self, ref: ModelRef) -> None:
        super().__init__(f"The download of {ref.key} was cancelled; the files that finished are kept, so "
                         f"downloading it again resumes.")


def download(
    ref: ModelRef, models_root: Path, *, progress: Progress | None = None, token: str | None = None,
    fetch: Fetch | None = None, checksums: bool = False, cancel: threading.Event | None = None,
) -> Path:
    """Make ``ref`` usable from disk and return its folder (tiny models are built instead).

    A model that is there but damaged (what ``needs.verify_model`` finds, hashing too with ``checksums``) is
    repaired: the damaged files are deleted with the hub's record of them and fetched again; a damaged
    tiny model is rebuilt. Setting ``cancel`` stops the transfer at its next chunk (``DownloadCancelled``).
    """
    if ref.is_tiny:
        return _build_tiny(ref, models_root)
    if not ref.repo_id:
        raise DownloadError(needs.no_download(ref, models_root) + ".")
    current = needs.model_status(ref, models_root)
    if current.state == "linked":
        return Path(current.folder)  # type: ignore[arg-type]
    folder = store.model_folder(ref, models_root)
    if current.state == "downloaded" and not needs.verify_model(ref, models_root, checksums=checksums):
        return folder
    # Before the marker (and the sizes it recorded) goes: the hub would hand a damaged file back as it is.
    for name, problem in store.damaged_files(folder, checksums=checksums).items():
        log.warning("%s: %s Fetching it again.", ref.key, problem)
        store.discard_file(folder, name)
    _discard_unpinned(ref, models_root)
    store.clear_marker(folder)  # whatever was there is not known to be complete any more
    check_free_space(ref, folder)
    _stop_if_cancelled(cancel, ref)
    (folder / needs.DOWNLOADING).parent.mkdir(parents=True, exist_ok=True)
    (folder / needs.DOWNLOADING).touch()  # until the marker: "partial", whatever the files alone suggest
    tracker = ByteProgress(progress, expected=int(ref.size_gb * GIB), cancel=cancel, ref=ref)
    log.info("downloading %s (%s@%s) into %s", ref.key, ref.repo_id, ref.revision, folder)
    try:
        (fetch or _snapshot_download)(
            repo_id=ref.repo_id, revision=ref.revision, local_dir=folder,
            allow_patterns=list(ref.allow_patterns) or None, tqdm_class=tracker.tqdm_class(), token=token,
        )
    except Exception as exc:  # noqa: BLE001 - errors a user can fix become DownloadError; others re-raise
        _remove_if_nothing_fetched(folder)  # a failed first attempt leaves no "partial" model behind
        if cancel is not None and cancel.is_set():  # whatever the transfer raised as it was stopped
            raise DownloadCancelled(ref) from exc
        message = explain_hub_error(exc, ref, folder)
        if message is None:
            raise
        raise DownloadError(message) from exc
    _stop_if_cancelled(cancel, ref)  # a transfer that ignored the cancel still gets no marker
    if fetch is None and not tracker.contacted:  # the hub draws its bars once it has listed the repository;
        _remove_if_nothing_fetched(folder)  # without them it handed back the folder as it was (offline): no marker
        raise DownloadError(_unreachable(ref))
    unpinned = _discard_unpinned(ref, models_root)
    if unpinned:
        raise DownloadError(f"{unpinned} It is what {ref.hub_url} serves now, so that repository changed; please "
                            f"report this.")
    if not needs.loadable(ref, models_root):
        raise DownloadError(f"The download of {ref.key} lacks files its loader needs: the preset's file list "
                            f"does not match {ref.repo_id}; please report this.")
    damaged = store.damaged_files(folder, checksums=checksums)
    if damaged:
        for name in damaged:
            store.discard_file(folder, name)
        problem = next(iter(damaged.values()))
        raise DownloadError(f"{problem} It arrived damaged (a bad connection or a failing disk?): run "
                            f"`python -m backend models download {ref.key}` again to fetch it once more.")
    (folder / needs.DOWNLOADING).unlink(missing_ok=True)
    store.write_marker(folder, ref)
    tracker.finish()
    log.info("downloaded %s", ref.key)
    return folder


def _discard_unpinned(ref: ModelRef, models_root: Path) -> str | None:
    """Delete a single weights file that is not the published one its preset is pinned to; say what it was."""
    if needs.kind_of(ref) != needs.WEIGHTS:
        return None
    from backend.models import finishing

    found = finishing.unpinned_file(ref, models_root)
    if found is None:
        return None
    path, problem = found
    log.warning("%s: %s Fetching it again.", ref.key, problem)
    store.discard_file(path.parent, path.name)
    return problem


def _stop_if_cancelled(cancel: threading.Event | None, ref: ModelRef) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(ref)


def abort_transfers() -> None:
    """Stop the hub's Xet transfers in flight: they report progress from Rust, so a cancel raised in the
    progress callback may only be seen when a file ends. (huggingface_hub's own Ctrl-C handling.)"""
    try:
        from huggingface_hub.utils._xet import abort_xet_session
    except ImportError:
        return
    abort_xet_session()


def _build_tiny(ref: ModelRef, models_root: Path) -> Path:
    """Build a tiny model, rebuilding one that is damaged (its builder starts over without the marker)."""
    kind = needs.kind_of(ref)
    if kind != needs.PIPELINE:  # the loaders build their own test twins on first use
        from backend.models import finishing, ip_adapter, llm_planner

        build = {needs.WEIGHTS: finishing.weights_file, needs.PLANNER: llm_planner.model_folder,
                 needs.IP_ADAPTER: ip_adapter.ensure_adapter}[kind]
        build(ref, models_root)
        return needs.model_folder(ref, models_root)
    from backend.models.tiny import MARKER_NAME, ensure_tiny_model, is_tiny_model_complete, tiny_model_dir

    folder = tiny_model_dir(ref.tiny_name, models_root)
    if is_tiny_model_complete(folder):
        problems = store.verify(ref, models_root)
        if problems:
            log.warning("%s is damaged (%s); rebuilding it", ref.key, problems[0].rstrip("."))
            (folder / MARKER_NAME).unlink(missing_ok=True)
    return ensure_tiny_model(ref.tiny_name, models_root)


def check_free_space(ref: ModelRef, folder: Path) -> None:
    """Refuse to start when the disk cannot hold what is still missing (the hub only warns)."""
    missing = max(0, int(ref.size_gb * GIB) - store.bytes_on_disk(folder))
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < missing + SPACE_MARGIN_BYTES:
        raise DownloadError(
            f"Not enough disk space for {ref.key}: it needs about {(missing + SPACE_MARGIN_BYTES) / GIB:.1f} GB "
            f"more in {where}, and only {free / GIB:.1f} GB is free. Free some space, or move the models folder "
            f"with STUDIO_MODELS_DIR."
        )


def explain_hub_error(exc: BaseException, ref: ModelRef, folder: Path) -> str | None:
    """One actionable sentence for a hub failure, or None when it is not one a user can fix."""
    from huggingface_hub import errors

    again = f"`python -m backend models download {ref.key}`"
    code = getattr(getattr(exc, "response", None), "status_code", "?")
    if isinstance(exc, errors.GatedRepoError) or (ref.gated and code in (401, 403)):  # before the 404 subclass
        return (f"{ref.key} is gated: accept its licence at {ref.hub_url} with your Hugging Face account, "
                f"then store an access token on the Models page (or `hf auth login`, or set HF_TOKEN) and "
                f"run {again} again.")
    if isinstance(exc, errors.HfHubHTTPError) and code in (401, 403):
        return (f"The Hub refused access to {ref.repo_id} (HTTP {code}): store a valid access token from "
                f"{TOKENS_PAGE} on the Models page (or `hf auth login`), then run {again} again.")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return (f"The Hub has no repository {ref.repo_id} (or it is private): check the preset's hub id, "
                f"or log in with `hf auth login` if you have access.")
    if isinstance(exc, errors.RevisionNotFoundError):
        return (f"{ref.repo_id} has no revision '{ref.revision}': fix the preset's revision (e.g. 'main') "
                f"and run {again} again.")
    if isinstance(exc, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
        return _unreachable(ref)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (f"The disk filled up while downloading {ref.key} into {folder}: free at least "
                f"{ref.size_gb:.0f} GB and run {again} again; it resumes where it stopped.")
    if isinstance(exc, errors.HfHubHTTPError):
        return (f"The Hub answered HTTP {code} while downloading {ref.key}: try {again} again later; it "
                f"resumes where it stopped.")
    if _is_network_error(exc):
        return (f"The network failed while downloading {ref.key} ({type(exc).__name__}): check the connection "
                f"and run {again} again; it resumes where it stopped.")
    return None


def _unreachable(ref: ModelRef) -> str:
    again = f"`python -m backend models download {ref.key}`"
    linked = (f", or point the preset at a folder you already have with `python -m backend models link {ref.key} "
              f"FOLDER`") if needs.kind_of(ref) == needs.PIPELINE else ""
    return (f"Cannot reach the Hugging Face Hub (offline, HF_HUB_OFFLINE=1, or no network) and {ref.key} is "
            f"not fully downloaded: connect and run {again} again (it resumes){linked}.")


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    # huggingface_hub 2.x talks HTTP through httpx2 (earlier releases: httpx); both raise TransportError.
    for name in ("httpx2", "httpx"):
        try:
            client = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(exc, client.TransportError):
            return True
    return False


# --- the Hugging Face token (gated models) ---------------------------------------------------------------


def has_token() -> bool:
    """Whether huggingface_hub has a token to send (HF_TOKEN, or one stored by ``save_token``/``hf auth login``)."""
    from huggingface_hub import get_token

    return get_token() is not None


def save_token(token: str) -> None:
    """Check ``token`` with the Hub and keep it in huggingface_hub's own token store (``login``).

    The studio never writes the token anywhere itself (database, logs, settings); no message here quotes it.
    """
    from huggingface_hub import errors, login

    token = token.strip()
    if not token:
        raise DownloadError(f"Paste an access token first: make one with 'read' access at {TOKENS_PAGE}.")
    try:
        login(token=token, add_to_git_credential=False, skip_if_logged_in=False)
    except ValueError:  # an organisation token, or one the Hub does not know
        raise DownloadError(f"The Hub did not accept this token: copy a personal token with 'read' access from "
                            f"{TOKENS_PAGE}.") from None
    except errors.HfHubHTTPError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", "?")
        raise DownloadError(f"The Hub refused this token (HTTP {code}): copy a personal token with 'read' access "
                            f"from {TOKENS_PAGE}.") from None
    except Exception as exc:  # noqa: BLE001 - offline, no network: the token is not stored unchecked
        raise DownloadError(f"Cannot reach the Hugging Face Hub to check the token ({type(exc).__name__}): "
                            f"connect and try again, or set HF_TOKEN in the studio's environment.") from None


def _snapshot_download(**kwargs: Any) -> Any:
    from huggingface_hub import snapshot_download

    return snapshot_download(**kwargs)


class ByteProgress:
    """Turns the hub's tqdm bars into ``progress(bytes_done, bytes_expected)`` calls, at most 4 a second.

    ``snapshot_download`` drives a few aggregated bars through ``tqdm_class``; the byte bars (unit "B")
    other than the network-transfer one count bytes written to disk, resumed bytes included. Every file's
    chunks pass through ``update``, which raises ``DownloadCancelled`` once ``cancel`` is set.
    """

    def __init__(self, callback: Progress | None, expected: int, *, cancel: threading.Event | None = None,
                 ref: ModelRef | None = None) -> None:
        self._callback = callback
        self._expected = expected
        self._cancel, self._ref = cancel, ref
        self.contacted = False  # the hub draws its bars only once it has listed the repository
        self._bars: list[Any] = []
        self._lock = threading.Lock()
        self._last = 0.0

    def tqdm_class(self) -> type:
        from tqdm.auto import tqdm

        tracker = self

        class _Bar(tqdm):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["file"] = _Discard()  # the caller draws its own bar
                super().__init__(*args, **kwargs)
                tracker.contacted = True
                if kwargs.get("unit") == "B" and not str(kwargs.get("desc", "")).startswith(NETWORK_BAR_DESC):
                    tracker._watch(self)

            def update(self, n: float | None = 1) -> bool | None:
                if tracker._cancel is not None and tracker._cancel.is_set():  # every chunk of every file
                    raise DownloadCancelled(tracker._ref)  # type: ignore[arg-type]
                shown = super().update(n)
                tracker._report()
                return shown

        return _Bar

    def totals(self) -> tuple[int, int]:
        with self._lock:
            done = int(sum(bar.n for bar in self._bars))
            total = int(sum(bar.total or 0 for bar in self._bars))
        return done, max(total, self._expected, done)

    def finish(self) -> None:
        done, _ = self.totals()
        if self._callback is not None:
            self._callback(done, done)

    def _watch(self, bar: Any) -> None:
        with self._lock:
            self._bars.append(bar)

    def _report(self) -> None:
        now = time.monotonic()
        if self._callback is None or now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        self._callback(*self.totals())


class _Discard:
    """A file that swallows tqdm's drawing."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _remove_if_nothing_fetched(folder: Path) -> None:
    """Remove the folder of a first attempt that fetched nothing (partial files are kept to resume)."""
    if store.folder_files(folder):
        return
    (folder / needs.DOWNLOADING).unlink(missing_ok=True)
    for empty in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            empty.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass
