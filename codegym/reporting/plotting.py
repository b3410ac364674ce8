"""Plots: learning curves of training runs and pass rates by horizon bucket with intervals.

Everything draws on a :class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no
global backend switch, no window — safe on a headless machine, in a thread or a notebook.

* :func:`learning_curves` — one panel per metric (pass rate, return, KL, entropy, explained
  variance by default), one line per run, runs overlaid (``codegym plot``).
* :func:`rates_plot` — pass@1 by horizon bucket with 95 % intervals, one line per series
  (``codegym eval --plot``; several series for an ablation).
* :func:`reliability_plot` — a PRM's calibration: predicted vs observed fraction of correct
  lines per score bin (:func:`codegym.reporting.stats.calibration_bins`).
* :func:`read_run` — the metric rows of a run directory (PPO ``metrics.jsonl``, PRM
  ``metrics.jsonl`` or SFT ``sft_log.jsonl``) or of a JSONL file.
* :func:`save_figure` — write a PNG (or any format matplotlib knows by the suffix).
* :func:`text_image` — text (an env's ANSI rendering) as an RGB array.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from codegym.reporting.stats import Rate

#: Default panels of :func:`learning_curves` (PPO ``metrics.jsonl`` names) and their titles.
LEARNING_CURVES: tuple[tuple[str, str], ...] = (
    ("charts/pass_rate", "pass rate (rollouts)"),
    ("charts/return", "return"),
    ("charts/kl", "KL to reference (nats / program)"),
    ("charts/entropy", "entropy (nats)"),
    ("charts/explained_variance", "explained variance"),
)
#: Metric files looked for in a run directory, in order, with their step field.
RUN_FILES: tuple[tuple[str, str], ...] = (("metrics.jsonl", "iteration"), ("sft_log.jsonl", "step"))


class Run(NamedTuple):
    """Metric rows of one run.

    Attributes:
        label: Legend label (the directory name by default).
        step_key: The x-axis field (``iteration`` or ``step``).
        rows: The rows, in file order.
    """

    label: str
    step_key: str
    rows: list[dict[str, Any]]


def read_run(path: str | Path, label: str | None = None) -> Run:
    """Read the metric rows of a run directory or a JSONL file.

    Raises:
        ValueError: No metrics file, or a line that is not JSON (names file and line).
    """
    p = Path(path)
    if p.is_dir():
        found = next(((p / name, key) for name, key in RUN_FILES if (p / name).is_file()), None)
        if found is None:
            names = ", ".join(n for n, _ in RUN_FILES)
            raise ValueError(f"run directory {str(p)!r} holds no metrics file ({names})")
        file, step_key = found
    elif p.is_file():
        file, step_key = p, ""
    else:
        raise ValueError(f"{str(p)!r} does not exist; pass a run directory (codegym train/sft/train-prm --out)")
    rows: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                if n > 1 and not text.endswith("\n"):  # a row cut by a crash: ignore
                    continue
                raise ValueError(f"{file}:{n}: not JSON ({e.msg})") from e
            if isinstance(row, dict):
                rows.append(row)
    if not step_key:
        step_key = "iteration" if any("iteration" in r for r in rows) else "step"
    name = label or (p.name if p.is_dir() else p.stem)
    return Run(name, step_key, rows)


def _series(run: Run, key: str, smooth: int) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in run.rows:
        v = row.get(key)
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(v) and run.step_key in row:
            xs.append(float(row[run.step_key]))
            ys.append(float(v))
    if smooth > 1 and ys:
        out, acc = [], 0.0
        for i, y in enumerate(ys):  # trailing moving average (no look-ahead)
            acc += y
            if i >= smooth:
                acc -= ys[i - smooth]
            out.append(acc / min(i + 1, smooth))
        ys = out
    return xs, ys


def _figure(n_panels: int, width: float = 4.2, height: float = 3.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, max(1, n_panels))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def learning_curves(
    runs: Sequence[Run],
    metrics: Sequence[str | tuple[str, str]] | None = None,
    smooth: int = 1,
    title: str | None = None,
) -> Any:
    """Learning curves of ``runs`` overlaid: one panel per metric, one line per run.

    Args:
        runs: From :func:`read_run`.
        metrics: Row fields (or ``(field, title)`` pairs). Default: :data:`LEARNING_CURVES`
            where a run has them, else every ``losses/*``, ``charts/*`` and ``val/*`` field
            found (at most 9).
        smooth: Trailing moving-average window in points (1: raw).
        title: Figure title.

    Returns:
        The ``matplotlib.figure.Figure`` (each panel's lines are ``ax.get_lines()``, in run
        order; a run without a metric gets no line in that panel).

    Raises:
        ValueError: No runs, ``smooth < 1`` or no metric to draw.
    """
    if not runs:
        raise ValueError("learning_curves needs at least one run")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    panels = _panels(runs, metrics)
    fig, axes = _figure(len(panels))
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, (key, name) in zip(axes, panels):
        for run, color in zip(runs, colors):
            xs, ys = _series(run, key, smooth)
            if xs:
                ax.plot(xs, ys, color=color, label=run.label, linewidth=1.4)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(runs[0].step_key)
        ax.grid(True, alpha=0.3)
    _shared_legend(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


def _panels(
    runs: Sequence[Run], metrics: Sequence[str | tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """``(field, title)`` per panel of :func:`learning_curves` (see its ``metrics``)."""
    present = {k for run in runs for row in run.rows for k in row}
    if metrics is None:
        panels = [(k, t) for k, t in LEARNING_CURVES if k in present]
        if not panels:
            keys = sorted(
                k for k in present
                if k.split("/")[0] in ("losses", "charts", "val", "test")
                and any(isinstance(r.get(k), (int, float)) for run in runs for r in run.rows)
            )  # fmt: skip
            panels = [(k, k) for k in keys[:9]]
    else:
        titles = dict(LEARNING_CURVES)
        panels = [(m, titles.get(m, m)) if isinstance(m, str) else (m[0], m[1]) for m in metrics]
    if not panels:
        raise ValueError(
            "nothing to plot: the runs have none of the metrics "
            f"{[k for k, _ in LEARNING_CURVES]}; pass metrics explicitly"
        )
    return panels


def _shared_legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend under the figure, from the first panel that has lines."""
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        for ax in axes:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=9)


def rates_plot(
    series: Mapping[str, Sequence[Rate]],
    title: str = "pass@1 by horizon (95 % intervals)",
    ylabel: str = "pass@1",
    xlabel: str = "horizon (steps)",
) -> Any:
    """Pass rates by group with 95 % interval bars, one line per series.

    Args:
        series: Label -> rates (e.g. :func:`codegym.reporting.stats.rates_by_horizon` of an eval). The
            group ``"all"`` is drawn as a separate point at the right of the buckets.
        title, ylabel, xlabel: Texts.

    Returns:
        The ``matplotlib.figure.Figure`` (one ``ErrorbarContainer`` per series in
        ``ax.containers``).

    Raises:
        ValueError: No series, or a series without rates.
    """
    if not series or any(not rates for rates in series.values()):
        raise ValueError("rates_plot needs at least one non-empty series")
    groups: list[str] = []
    for rates in series.values():
        for r in rates:
            if r.group != "all" and r.group not in groups:
                groups.append(r.group)
    has_all = any(r.group == "all" for rates in series.values() for r in rates)
    order = groups + (["all"] if has_all else [])
    pos = {g: float(i) + (0.5 if g == "all" and groups else 0.0) for i, g in enumerate(order)}
    fig, (ax,) = _figure(1, width=max(6.0, 1.1 * len(order) + 2.5), height=4.2)
    n = len(series)
    width = 0.5 / max(n, 1)
    for i, (label, rates) in enumerate(series.items()):
        shift = (i - (n - 1) / 2) * width
        pts = [r for r in rates if r.group != "all"]
        xs = [pos[r.group] + shift for r in pts]
        ys = [r.rate for r in pts]
        err = [[r.rate - r.lo for r in pts], [r.hi - r.rate for r in pts]]
        color = f"C{i % 10}"
        ax.errorbar(xs, ys, yerr=err, color=color, marker="o", capsize=3, linewidth=1.4, label=label)
        for r in rates:
            if r.group == "all":
                ax.errorbar([pos["all"] + shift], [r.rate], yerr=[[r.rate - r.lo], [r.hi - r.rate]],
                            color=color, marker="s", capsize=3, linestyle="none")  # fmt: skip
    ax.set_xticks([pos[g] for g in order], [f"{g}\n(n={_tasks(series, g)})" for g in order], fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(n, 5), fontsize=8)
    return fig


def reliability_plot(
    tables: Mapping[str, Sequence[Mapping[str, float]]],
    title: str = "PRM calibration (held-out responses)",
) -> Any:
    """Reliability diagram: per series, the bins of :func:`codegym.reporting.stats.calibration_bins`
    (``predicted`` on x, ``observed`` on y) and the diagonal of perfect calibration.

    Args:
        tables: Label -> calibration bins (each with ``predicted``, ``observed``, ``n``).
        title: Figure title.

    Returns:
        The ``matplotlib.figure.Figure`` (the diagonal is the first line of the axes, then
        one line per series).

    Raises:
        ValueError: No series.
    """
    if not tables:
        raise ValueError("reliability_plot needs at least one calibration table")
    fig, (ax,) = _figure(1, width=5.0, height=4.6)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1.0, label="perfect calibration")
    for i, (label, table) in enumerate(tables.items()):
        ax.plot([b["predicted"] for b in table], [b["observed"] for b in table], "o-",
                color=f"C{i % 10}", label=label, linewidth=1.4)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("PRM score as a probability, (s + 1) / 2")
    ax.set_ylabel("fraction of lines labeled +1")
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def _tasks(series: Mapping[str, Sequence[Rate]], group: str) -> str:
    counts = sorted({r.tasks for rates in series.values() for r in rates if r.group == group})
    return "/".join(str(c) for c in counts)


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix; parent directories created)."""
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"plot path {str(path)!r} needs a suffix such as .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def text_image(text: str, width: int = 640, height: int = 360) -> Any:
    """``text`` drawn in a monospace font as a ``[height, width, 3]`` uint8 RGB array."""
    import numpy as np

    fig, (ax,) = _figure(1, width=width / 100, height=height / 100)
    fig.set_layout_engine(None)
    ax.set_axis_off()
    ax.set_position((0, 0, 1, 1))
    ax.text(0.01, 0.99, text, family="monospace", fontsize=7, va="top", ha="left",
            transform=ax.transAxes)  # fmt: skip
    fig.set_dpi(100)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])
