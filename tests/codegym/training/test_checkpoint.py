"""Checkpointer atomicity (real crashes of a real process) and the metrics writer."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from codegym.training.checkpoint import COMPLETE, Checkpointer, MetricsWriter


def _writer(value: str):
    def write(d):
        (d / "state.pt").write_text(value)
        (d / "model").mkdir()
        (d / "model" / "weights.bin").write_text(value * 3)

    return write


def test_save_then_latest_returns_newest(tmp_path):
    ckpt = Checkpointer(tmp_path)
    assert ckpt.latest() is None
    ckpt.save(_writer("one"), step=1)
    ckpt.save(_writer("two"), step=2)
    path = ckpt.latest()
    assert path == tmp_path / "checkpoint"
    assert (path / "state.pt").read_text() == "two" and ckpt.step_of(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_failure_in_write_step_keeps_previous_checkpoint(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(_writer("one"), step=1)

    def broken(d):
        (d / "state.pt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.save(broken, step=2)
    path = ckpt.latest()
    assert (path / "state.pt").read_text() == "one" and ckpt.step_of(path) == 1
    assert not (tmp_path / "checkpoint.tmp").exists()


_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from codegym.training.checkpoint import Checkpointer

    run, mode = Path(sys.argv[1]), sys.argv[2]
    ckpt = Checkpointer(run)
    ckpt.save(lambda d: (d / "state.pt").write_text("one"), step=1)

    def write(d):
        (d / "state.pt").write_text("two")
        if mode == "mid-write":
            print("writing", flush=True)
            time.sleep(60)

    if mode == "between-renames":  # die after the old checkpoint moved aside, before the new one moved in
        real = Path.rename
        def rename(self, target):
            if self.name == "checkpoint.tmp":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, target)
        Path.rename = rename
    ckpt.save(write, step=2)
    """
)


@pytest.mark.parametrize("mode, expected", [("mid-write", "one"), ("between-renames", "two")])
def test_killed_process_leaves_a_loadable_checkpoint(tmp_path, mode, expected):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(run), mode], stdout=subprocess.PIPE, text=True)
    if mode == "mid-write":
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -9
    # the crash left the run directory in an intermediate state ...
    assert (run / "checkpoint.tmp").exists()
    # ... from which resume finds the newest complete checkpoint
    ckpt = Checkpointer(run)
    path = ckpt.latest()
    assert path == run / "checkpoint"
    assert (path / "state.pt").read_text() == expected
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint"]


def test_legacy_checkpoint_without_marker_counts_when_state_file_exists(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "trainer_state.pt").write_text("x")
    assert Checkpointer(tmp_path, state_name="trainer_state.pt").latest() == tmp_path / "checkpoint"
    assert Checkpointer(tmp_path / "other").latest() is None
    # a partial temp dir (no marker) is never taken for a checkpoint
    (tmp_path / "p" / "checkpoint.tmp").mkdir(parents=True)
    (tmp_path / "p" / "checkpoint.tmp" / "state.pt").write_text("half")
    assert Checkpointer(tmp_path / "p").latest() is None
    assert not (tmp_path / "p" / "checkpoint.tmp").exists()


def test_marker_records_step(tmp_path):
    ckpt = Checkpointer(tmp_path, name="ck")
    ckpt.save(_writer("a"), step=7)
    assert json.loads((tmp_path / "ck" / COMPLETE).read_text()) == {"step": 7}


class _Tracker:
    def __init__(self):
        self.rows, self.closed = [], False

    def log(self, row):
        self.rows.append(dict(row))

    def close(self):
        self.closed = True


def test_metrics_writer_appends_flushes_and_mirrors(tmp_path):
    path = tmp_path / "m" / "metrics.jsonl"
    tracker = _Tracker()
    with MetricsWriter(path, tracker) as w:
        w.log({"step": 1, "loss": float("nan")})
        # flushed per row: readable before close
        assert json.loads(path.read_text()) == {"step": 1, "loss": None}
    assert tracker.closed and tracker.rows[0]["step"] == 1
    with MetricsWriter(path) as w:
        w({"step": 2})
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
    with MetricsWriter(path, append=False) as w:
        w({"step": 3})
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [3]


def test_trim_drops_rows_after_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iteration": 1}\n{"iteration": 2}\n{"iteration": 3}\n{broken\n')
    assert MetricsWriter.trim(path, "iteration", 2) == 2
    assert [json.loads(x)["iteration"] for x in path.read_text().splitlines()] == [1, 2]
    assert MetricsWriter.trim(tmp_path / "absent.jsonl", "step", 0) == 0
