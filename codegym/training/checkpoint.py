"""Resumable run state shared by every trainer: atomic checkpoints and one metrics writer.

:class:`Checkpointer` keeps one checkpoint directory per run (``RUN/checkpoint/``) and
replaces it atomically:

1. the new checkpoint is written to ``RUN/checkpoint.tmp/`` by the trainer's writer;
2. every file in it is flushed to disk (``fsync``) and a ``.complete`` marker (the step) is
   written last;
3. the current ``RUN/checkpoint/`` is renamed to ``RUN/checkpoint.old/``, the temporary
   directory is renamed into place, the run directory is fsynced, and the old one is deleted.

A crash at any moment leaves at least one complete checkpoint on disk; :meth:`Checkpointer.latest`
(called on resume) moves the newest complete one back to ``RUN/checkpoint/`` and deletes
partial leftovers. A checkpoint written by an earlier codegym version (no marker) counts as
complete when its state file is there: those were renamed into place only once written.

:class:`MetricsWriter` appends one JSON row per line to a run's metrics file (NaN as
``null``), flushes and fsyncs each row, and mirrors it to a :class:`codegym.training.tracking.Tracker`.
On resume :meth:`MetricsWriter.trim` drops rows newer than the checkpoint (written before a
crash), so a resumed run's file reads as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from codegym.reporting.jsonio import dumps

#: Marker file written last into a checkpoint directory: ``{"step": N}``.
COMPLETE = ".complete"


def _fsync_tree(root: Path) -> None:
    """fsync every file below ``root`` and every directory (so renames of them are durable)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Checkpointer:
    """One atomically replaced checkpoint directory in a run directory.

    Args:
        run_dir: The run directory.
        name: Checkpoint directory name inside ``run_dir``.
        state_name: The trainer's state file inside a checkpoint: a checkpoint without the
            ``.complete`` marker (written by an earlier version) counts as complete when it
            holds this file.

    Example::

        ckpt = Checkpointer(out)
        if (path := ckpt.latest()) is not None:
            state = torch.load(path / "state.pt")
        ...
        ckpt.save(lambda d: torch.save(state, d / "state.pt"), step=step)
    """

    def __init__(self, run_dir: str | os.PathLike[str], name: str = "checkpoint", state_name: str = "state.pt") -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.state_name = state_name

    @property
    def path(self) -> Path:
        """Where the current checkpoint lives (``RUN/NAME``)."""
        return self.run_dir / self.name

    @property
    def _tmp(self) -> Path:
        return self.run_dir / f"{self.name}.tmp"

    @property
    def _old(self) -> Path:
        return self.run_dir / f"{self.name}.old"

    def is_complete(self, path: Path) -> bool:
        """``path`` holds a fully written checkpoint."""
        if (path / COMPLETE).is_file():
            return True
        return path == self.path and (path / self.state_name).is_file()

    def step_of(self, path: Path) -> int | None:
        """The step recorded in ``path``'s marker (None without one)."""
        try:
            return int(json.loads((path / COMPLETE).read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def latest(self) -> Path | None:
        """The newest complete checkpoint, moved to :attr:`path`; partial leftovers deleted.

        Returns:
            :attr:`path`, or None when no complete checkpoint exists.
        """
        candidates = [p for p in (self.path, self._tmp, self._old) if p.is_dir() and self.is_complete(p)]
        if not candidates:
            for p in (self.path, self._tmp, self._old):
                shutil.rmtree(p, ignore_errors=True)
            return None
        best = max(candidates, key=lambda p: (self.step_of(p) if self.step_of(p) is not None else -1, p == self.path))
        if best != self.path:
            shutil.rmtree(self.path, ignore_errors=True)
            best.rename(self.path)
            _fsync_dir(self.run_dir)
        for p in (self._tmp, self._old):
            shutil.rmtree(p, ignore_errors=True)
        return self.path

    def save(self, write: Callable[[Path], None], step: int) -> Path:
        """Write a checkpoint with ``write(directory)`` and put it in place atomically.

        Args:
            write: Writes the checkpoint's files into the (empty, existing) directory given.
            step: The step (or iteration) the checkpoint holds, recorded in its marker.

        Returns:
            :attr:`path`. If ``write`` raises, the previous checkpoint is left untouched.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        _fsync_tree(tmp)
        with open(tmp / COMPLETE, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": int(step)}))
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        shutil.rmtree(self._old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(self._old)
        tmp.rename(self.path)
        _fsync_dir(self.run_dir)
        shutil.rmtree(self._old, ignore_errors=True)
        return self.path


class MetricsWriter:
    """Appends metric rows to a JSONL file (flushed and fsynced per row), mirrored to a tracker.

    Args:
        path: The JSONL file (its directory is created).
        tracker: A :class:`codegym.training.tracking.Tracker` (or anything with ``log(row)``), or None.
        append: Keep existing rows (resume); False truncates the file.
    """

    def __init__(self, path: str | os.PathLike[str], tracker: Any = None, append: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tracker = tracker
        self._fh = self.path.open("a" if append else "w", encoding="utf-8")

    def log(self, row: Mapping[str, Any]) -> None:
        """Write ``row`` (NaN -> null) and pass it to the tracker."""
        self._fh.write(dumps(dict(row)) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        if self.tracker is not None:
            self.tracker.log(row)

    __call__ = log

    def close(self) -> None:
        """Close the file and the tracker."""
        if not self._fh.closed:
            self._fh.close()
        if self.tracker is not None:
            self.tracker.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def trim(path: str | os.PathLike[str], step_key: str, last_step: int) -> int:
        """Drop rows of ``path`` whose ``step_key`` is above ``last_step`` (and unreadable rows).

        Returns:
            The number of rows dropped.
        """
        p = Path(path)
        if not p.is_file():
            return 0
        lines = p.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError, TypeError, ValueError):
                row = json.loads(line)
                if int(row.get(step_key, 0)) <= last_step:
                    keep.append(line)
        if len(keep) != len(lines):
            p.write_text("".join(x + "\n" for x in keep), encoding="utf-8")
        return len(lines) - len(keep)
