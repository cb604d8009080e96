"""The second process of ``driftline analyze``: the windows of a later part of the files.

:func:`~driftline.analyze.offline.split_rows` cuts the rows at window boundaries; the calling
process computes the first part and a :class:`Child` each later one, in a fresh interpreter
(``python -m driftline.analyze.worker``: never a fork, which would copy the caller's threads'
locks, and never the caller's ``__main__`` re-imported, as ``multiprocessing``'s spawn does).
The task goes in through a temporary file and the reports come back pickled on the child's
stdout, with the error that stopped it, if any: the caller yields the reports made before the
error and then raises it, as one process would.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.analyze.offline import Task
    from driftline.engine.snapshot import WindowReport

Result = tuple[list["WindowReport"], BaseException | None]


class Child:
    """One child process computing the windows of rows ``start`` to ``stop`` (None: the end),
    the first one numbered ``first_window``."""

    def __init__(self, task: Task, start: int, stop: int | None, rows: list[int],
                 first_window: int) -> None:
        fd, name = tempfile.mkstemp(prefix="driftline-analyze-", suffix=".pickle")
        self._path = Path(name)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump((task, start, stop, rows, first_window), fh, protocol=pickle.HIGHEST_PROTOCOL)
        env = dict(os.environ)
        # the same driftline as this process's, wherever it was imported from
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "driftline.analyze.worker", name], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, env=env)

    def result(self) -> Result:
        """Wait for the child: its reports, and the error that stopped it (None if none)."""
        proc = self._proc
        assert proc is not None
        out, _ = proc.communicate()
        self._proc = None
        self._path.unlink(missing_ok=True)
        if proc.returncode != 0 or not out:
            raise RuntimeError(f"the analysis process for a later part of the windows exited "
                               f"with status {proc.returncode} (its error is above)")
        result: Result = pickle.loads(out)
        return result

    def close(self) -> None:
        """Stop the child if it still runs (the caller stopped early or failed)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.communicate()
            self._proc = None
        self._path.unlink(missing_ok=True)


def run(task: Task, start: int, stop: int | None, rows: list[int],
        first_window: int) -> Result:
    """The windows of rows ``start`` to ``stop``, and the error that stopped them, if any."""
    from driftline.analyze.offline import _record_batches
    from driftline.engine.window_stats import without_pool
    from driftline.errors import DriftlineError

    reports: list[WindowReport] = []
    try:
        with without_pool():  # each process has a core (offline._split)
            runner = task.runner(first_window)
            for batch in _record_batches(task, start, stop, None, rows):
                reports.extend(runner.observe(batch))
            last = runner.flush()
            if last is not None:
                reports.append(last)
    except DriftlineError as exc:  # the caller raises it after the reports before it
        return reports, exc
    return reports, None


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller stops this process on Ctrl-C
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but the result on the pipe
    args: Any = pickle.loads(Path(argv[0]).read_bytes())
    pickle.dump(run(*args), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
