"""Plots and intervals: learning curves (one line per run), pass@1 by horizon with 95 %
intervals, ``codegym plot`` and ``codegym eval --plot`` PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codegym.cli import main
from codegym.reporting.plotting import Run, learning_curves, rates_plot, read_run, save_figure
from codegym.reporting.stats import mean_interval, pass_rate, rates_by_horizon, wilson_interval


def _png_shape(path: Path) -> tuple[int, int]:
    from matplotlib.image import imread

    img = imread(str(path))
    return img.shape[0], img.shape[1]


def test_wilson_interval_matches_known_values() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    m, lo, hi = mean_interval([0.0, 1.0, 0.5, 0.5])
    assert m == 0.5 and hi - m == pytest.approx(1.96 * (1 / 6) ** 0.5 / 2, rel=1e-3)


def test_rates_by_horizon_groups_and_clusters_by_task() -> None:
    rows = [{"task_id": f"t{i}", "steps": s, "passed": p}
            for i, (s, p) in enumerate([(2, True), (2, False), (5, True), (11, False)])]  # fmt: skip
    rates = rates_by_horizon(rows)
    assert [r.group for r in rates] == ["all", "1-3", "4-6", "10-12"]
    assert rates[0].rate == 0.5 and rates[0].tasks == 4 and rates[0].lo < 0.5 < rates[0].hi
    # two episodes of one task are not two tasks: the interval is over task means
    r = pass_rate("x", {"a": [True, False], "b": [True, True], "c": [False, False]})
    assert r.tasks == 3 and r.episodes == 6 and r.rate == pytest.approx(0.5)


def _fake_run(label: str, n: int, scale: float) -> Run:
    rows = [{"iteration": i, "charts/pass_rate": scale * i / n, "charts/return": i * 0.1,
             "charts/kl": 0.01 * i, "charts/entropy": 1.0 - 0.01 * i,
             "charts/explained_variance": float("nan") if i == 1 else 0.5} for i in range(1, n + 1)]  # fmt: skip
    return Run(label, "iteration", rows)


def test_learning_curves_one_line_per_run_per_panel(tmp_path: Path) -> None:
    runs = [_fake_run("sparse", 10, 0.5), _fake_run("dense", 8, 0.9), _fake_run("paper", 6, 0.7)]
    fig = learning_curves(runs, smooth=2)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes][:2] == ["pass rate (rollouts)", "return"]
    assert len(axes) == 5 and all(len(ax.get_lines()) == 3 for ax in axes)
    assert [len(line.get_xdata()) for line in axes[0].get_lines()] == [10, 8, 6]
    assert len(axes[4].get_lines()[0].get_xdata()) == 9  # the NaN point is skipped
    out = save_figure(fig, tmp_path / "c.png")
    h, w = _png_shape(out)
    assert 300 <= h <= 2000 and 600 <= w <= 3000 and out.stat().st_size > 10_000
    with pytest.raises(ValueError, match="nothing to plot"):
        learning_curves([Run("x", "step", [{"step": 1, "other": 2}])], metrics=None)


def test_rates_plot_draws_intervals_per_series(tmp_path: Path) -> None:
    rows = [{"task_id": f"t{i}", "steps": 1 + i % 9, "passed": i % 3 == 0} for i in range(60)]
    a, b = rates_by_horizon(rows), rates_by_horizon([{**r, "passed": not r["passed"]} for r in rows])
    fig = rates_plot({"a": a, "b": b})
    ax = fig.get_axes()[0]
    assert len([c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]) == 4  # buckets + "all"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0].startswith("1-3") and labels[-1].startswith("all")
    out = save_figure(fig, tmp_path / "r.png")
    assert out.stat().st_size > 5_000 and min(_png_shape(out)) >= 300


def test_plot_command_reads_run_dirs(tmp_path: Path, capsys) -> None:
    for name, scale in (("a", 0.4), ("b", 0.8)):
        d = tmp_path / name
        d.mkdir()
        run = _fake_run(name, 5, scale)
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run.rows) + '{"iteration": 6, "cha')
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert len(read_run(tmp_path / "a").rows) == 5  # a row cut by a crash is ignored
    assert main(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "q.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "a"), "--labels", "x,y", "--out", str(tmp_path / "q.png")]) == 2


def test_eval_plot_draws_pass_at_1_by_horizon(tmp_path: Path) -> None:
    out = tmp_path / "eval.png"
    rc = main(["eval", "--agent", "reference", "--agent-arg", "corrupt=0.3", "--suite", "pipelines",
               "--min-steps", "2", "--max-steps", "8", "--episodes", "24", "--workers", "2",
               "--out", str(tmp_path / "t.jsonl"), "--plot", str(out)])  # fmt: skip
    assert rc == 0 and out.stat().st_size > 5_000
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    groups = [r.group for r in rates_by_horizon(rows)]
    assert groups[0] == "all" and len(groups) >= 3  # several buckets, each drawn with its interval
    assert main(["eval", "--agent", "reference", "--episodes", "2", "--plot", str(tmp_path / "noext")]) == 2


def test_reliability_plot_draws_the_diagonal_and_one_line_per_series(tmp_path) -> None:
    from codegym.reporting.plotting import reliability_plot, save_figure
    from codegym.reporting.stats import calibration_bins

    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, 500)
    table = calibration_bins(scores, rng.random(500) < (scores + 1) / 2)
    fig = reliability_plot({"a": table, "b": table[:3]})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and list(lines[0].get_xdata()) == [0, 1]
    assert len(lines[1].get_xdata()) == len(table)
    path = save_figure(fig, tmp_path / "cal.png")
    assert path.stat().st_size > 5000
    with pytest.raises(ValueError, match="at least one"):
        reliability_plot({})
