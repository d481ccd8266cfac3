"""Where the command line's log goes: one line per problem on the terminal, tracebacks in the log file.

A failed job is already summed up by its one-line error; the traceback behind it is for a bug report,
so it goes to ``outputs/.studio/logs/studio.log`` (the file the studio writes too), never to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from backend.library_logging import FILE_ONLY

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Terminal(logging.StreamHandler):
    """stderr as it is when a record is written (a test or a caller may have swapped it since)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _QuietFile(logging.FileHandler):
    """A log file that gives up silently when the disk is full (the terminal still gets the one-liners)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


class _NoTraceback(logging.Formatter):
    """Messages without the exception text or stack that may come with them."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def setup(verbose: bool, log_file: Path | None) -> None:
    """stderr: warnings (with ``-v``, progress details), no tracebacks; the log file: everything, in full."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for old in [h for h in root.handlers if isinstance(h, (_Terminal, _QuietFile))]:  # main() called again
        root.removeHandler(old)
        old.close()
    terminal = _Terminal(sys.stderr)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    terminal.setFormatter(_NoTraceback(FORMAT))
    terminal.addFilter(lambda record: not getattr(record, FILE_ONLY, False))
    root.addHandler(terminal)
    if log_file is None:
        return
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = _QuietFile(log_file, encoding="utf-8")
    except OSError as exc:  # a read-only or full disk: the terminal still gets the one-line errors
        root.warning("cannot write the log file %s (%s)", log_file, exc.strerror or exc)
        return
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
