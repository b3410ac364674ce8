"""``bench/sandbox_ab.py`` builds pools from two worker sources and times them side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import sandbox_ab  # noqa: E402


def test_worker_sources_at_a_revision_and_in_the_tree() -> None:
    tree = {name: src for name, src, _ in sandbox_ab.worker_sources(None)}
    assert {"sandboxes.encoding", "sandboxes.worker.forkserver", "sandboxes.worker.judge"} <= set(tree)
    assert "class ForkServer" in tree["sandboxes.worker.forkserver"]
    at_head = {name: src for name, src, _ in sandbox_ab.worker_sources("HEAD")}
    assert "class ForkServer" in at_head["sandboxes.worker.forkserver"]


def test_unknown_revision_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="no-such-rev"):
        sandbox_ab.worker_sources("no-such-rev")


def test_one_pair_runs_both_sides_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_ab.main(["--base", "HEAD", "--pairs", "1"]) == 0
    out = capsys.readouterr().out
    assert "median pairwise CPU ratio B/A" in out
    assert "fork server faults" in out
