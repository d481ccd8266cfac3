"""Every failure a user can act on has a class here, and one base: ``StudioError``.

The job layer classifies a failure with ``isinstance`` alone: a ``StudioError`` ends the job with
its own message (written for a person, naming what to change); anything else is a bug, logged with
its traceback and shown as "Unexpected error". Lower layers raise these classes directly, so the
orchestrator never needs to import a stage to know what went wrong.

``JobCancelled`` is deliberately not a ``StudioError``: a cancel is what the user asked for.
"""

from __future__ import annotations

DISK_FULL_ADVICE = ("The disk is full: free some space (outputs/, temp/ or models/), then resume the job; "
                    "its finished stages are kept.")


class StudioError(Exception):
    """A failure with a message a user can act on (``str(exc)`` is that message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(StudioError, ValueError):
    """A job spec the user must fix; ``field`` names the offending input (``finish.lut``, ``fps``...)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class ToolMissing(StudioError):
    """A program the job needs (ffmpeg) is missing or broken; found before any model work starts."""


class ModelNotAvailable(StudioError):
    """A model is not on disk (not downloaded, or incomplete); the message says how to get it."""


class OutOfMemoryAfterAllPlans(StudioError):
    """Every memory level was tried and each ran out of memory; ``tried`` lists them."""

    def __init__(self, message: str, tried: list[str] | None = None) -> None:
        super().__init__(message)
        self.tried = tried or []


class NotEnoughRam(StudioError):
    """The plan needs more system RAM than is available now; the message says how much and what to change."""


class FinishError(StudioError):
    """Finishing could not deliver any output format; the message carries ffmpeg's own words."""


class EncodeFailed(FinishError):
    """ffmpeg exited with an error; the message is ffmpeg's own text, trimmed (the next format is tried)."""


class VerifyFailed(FinishError):
    """The file was written but is not what was asked for (the next format is tried)."""


class LutError(StudioError, ValueError):
    """A colour LUT (.cube) that cannot be used; the message names the line and the reason."""


class UploadError(StudioError, ValueError):
    """An uploaded image or video the studio will not take (checked by content, not by name)."""


class VideoProbeError(StudioError, ValueError):
    """A video ffmpeg cannot read (no video stream, no frames, damaged)."""


class UnsafePath(StudioError, ValueError):
    """A path that leads outside the folder it must stay in (a record or request never escapes it)."""


class ModelFolderError(StudioError, ValueError):
    """A folder that cannot serve a model preset (``models link``): what is missing or wrong."""


class DiskFull(StudioError):
    """The disk filled up while writing; ``DISK_FULL_ADVICE`` plus what was being written."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(DISK_FULL_ADVICE + (f" ({detail})" if detail else ""))
        self.detail = detail


class DownloadError(StudioError):
    """A model download failed for a reason the user can act on (offline, gated, disk full...)."""


class JobCancelled(Exception):
    """Raised inside a stage (typically from a diffusers step callback) when the user cancels."""


class StoryboardError(StudioError, ValueError):
    """A storyboard edit that cannot be done (the job is not waiting for review, a bad index or time...)."""


class AwaitingReview(Exception):  # noqa: N818 - a pause, not an error
    """Not a failure: the keyframes are done and the job waits for the user to review them (``review``)."""

    def __init__(self, record: object) -> None:
        super().__init__("the storyboard is ready for review")
        self.record = record  # the JobRecord so far, with its storyboard


class LoraError(StudioError, ValueError):
    """A LoRA file that cannot be applied (not a LoRA, made for another model, a pipeline without LoRA support)."""
