"""One progress bar over the input files of ``baseline build``, ``analyze`` and ``replay``.

The bar's length is the files' total size in bytes and each file fills its own share as it is
read (:func:`driftline.io.readers.iter_batches` reports the rows read out of the Parquet/Arrow
row count, or the bytes parsed of a CSV/JSONL file). Counting files instead left one large file
at 0 % until it was done. The bar is drawn by rich on stderr, only when stderr is a terminal
unless forced, so it never mixes with a report on stdout or in a log.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from driftline.io.readers import DataFile, Progress

#: Seconds between redraws: often enough to look live, rarely enough to cost nothing.
MIN_REDRAW = 0.1


def wanted(flag: bool | None, *, quiet: bool = False, stdout_busy: bool = False) -> bool:
    """Whether to draw a bar: ``--progress``/``--no-progress`` decide, ``--quiet`` turns it off;
    by default only when stderr is a terminal and stdout is not a terminal being written to
    at the same time (a streamed report there would be torn by the bar's redraws)."""
    if quiet:
        return False
    if flag is not None:
        return flag
    return _isatty(sys.stderr) and not (stdout_busy and _isatty(sys.stdout))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _size(file: DataFile) -> int:
    """A file's size in bytes: its weight on the bar (1 when it cannot be told cheaply)."""
    from driftline.io.storage import filesystem, is_uri

    try:
        if is_uri(file.path):
            fs, inner = filesystem(file.path)
            return max(1, int(fs.get_file_info(inner).size or 1))
        return max(1, os.path.getsize(file.path))
    except (OSError, ValueError):
        return 1


class ReadProgress:
    """A bar over ``files``: :meth:`file` gives the :data:`~driftline.io.readers.Progress`
    callback of the i-th file, :meth:`rows` counts the rows into the description.

    ``console`` defaults to rich's stderr console; ``min_interval`` limits redraws (seconds,
    default :data:`MIN_REDRAW`)."""

    def __init__(self, files: Sequence[DataFile], *, description: str = "reading",
                 console: Any = None, min_interval: float | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.weights = [_size(f) for f in files]
        self.offsets = [sum(self.weights[:i]) for i in range(len(files))]
        self.description = description
        self.min_interval = MIN_REDRAW if min_interval is None else min_interval
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeRemainingColumn(), console=console or Console(stderr=True), transient=True,
            auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(description, total=sum(self.weights) or 1)
        self.n_rows = 0
        self.n_files = len(files)
        self._current = 0
        self._drawn = 0.0
        # never redirect stdout: rich would send a streamed report on stdout to the bar's console
        self.progress.start()

    def file(self, index: int) -> Progress:
        """The callback for the ``index``-th file: the share of that file read so far."""
        self._current = index

        def done(share: float) -> None:
            completed = self.offsets[index] + self.weights[index] * min(1.0, max(0.0, share))
            self.progress.update(self.task, completed=completed)
            self._draw()

        return done

    def rows(self, n: int) -> None:
        self.n_rows += n
        files = f", file {self._current + 1}/{self.n_files}" if self.n_files > 1 else ""
        self.progress.update(self.task,
                             description=f"{self.description} ({self.n_rows:,} rows{files})")

    def _draw(self) -> None:
        now = time.monotonic()
        if now - self._drawn >= self.min_interval:
            self._drawn = now
            self.progress.refresh()

    @property
    def completed(self) -> float:
        """The share of all input read so far (0 to 1)."""
        task = self.progress.tasks[0]
        return float(task.completed) / float(task.total or 1)

    def close(self) -> None:
        self.progress.stop()

    def __enter__(self) -> ReadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_progress(show: bool, files: Sequence[DataFile], *, description: str = "reading",
                  console: Any = None) -> ReadProgress | None:
    """A bar when ``show`` (see :func:`wanted`), else None."""
    return ReadProgress(files, description=description, console=console) if show else None
