"""Results of a ``codegym reproduce`` run: ``results.json``, a rich table and PNG plots.

Everything here reads the run directory only (the per-task evaluation files, the PPO metrics,
the PRM's figures), so a report can be rebuilt at any time, also from a partial run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.reproduce.config import ReproduceConfig, arm_description, twin_baseline
from agents.reproduce.pipeline import DONE, Layout, arm_runs, label_sources, read_metrics
from codegym.reporting.stats import Estimate, bootstrap_mean, paired_difference

#: Per-task outcomes compared across arms: pass@1 (greedy; sampled = fraction of the samples
#: that pass) and line-prefix accuracy (fraction of the reference's lines reproduced before
#: the first difference; far more sensitive than pass@1 where programs rarely pass).
MEASURES = ("greedy", "sampled", "greedy_prefix_accuracy", "sampled_prefix_accuracy")
def baselines(arms: Sequence[str]) -> list[str]:
    """The arms others are paired with: ``sparse``, then every run arm that is some arm's twin
    (:func:`agents.reproduce.config.twin_baseline`: ``grpo``, ``sparse@gae_lambda=0.8``, …)."""
    twins = {twin_baseline(a) for a in arms}
    return ["sparse", *(a for a in arms if a != "sparse" and a in twins)]


def compared_arms(results: dict[str, Any], base: str) -> list[str]:
    """The arms of ``results`` compared with ``base`` (``sparse``: every other arm; another
    baseline: the arms whose twin it is, when it was run)."""
    arms = list(results["arms"])
    if base == "sparse":
        return [a for a in arms if a != "sparse"]
    return [a for a in arms if twin_baseline(a) == base] if base in arms else []


def _sampled_tokens(run: Path, rows: list[dict[str, Any]]) -> float | None:
    """Tokens sampled over the run: tokens per program x programs per iteration, summed."""
    path = run / "config.json"
    if not rows or not path.is_file():
        return None
    config = json.loads(path.read_text())
    per_iteration = int(config.get("num_prompts", 0)) * int(config.get("samples_per_prompt", 0))
    return float(sum(float(r.get("charts/tokens", 0.0)) for r in rows) * per_iteration)


def _load_eval(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _bucket_masks(steps: list[int], buckets: str) -> dict[str, np.ndarray]:
    from codegym.evaluation import parse_buckets

    s = np.asarray(steps)
    masks = {f"{lo}-{hi}": (s >= lo) & (s <= hi) for lo, hi in parse_buckets(buckets)}
    masks["all"] = np.ones(len(s), dtype=bool)
    return masks


def _matrix(evals: list[dict[str, Any]], measure: str) -> np.ndarray | None:
    """[S, T] outcomes of one arm (None when a seed is missing or has no such measure)."""
    rows = [e.get(measure) for e in evals]
    if not rows or any(r is None for r in rows):
        return None
    return np.asarray(rows, dtype=np.float64)


def _diagnostics(runs: list[Path]) -> dict[str, float | None]:
    """Hacking symptoms and cost per arm, averaged over seeds (last 10 iterations)."""

    def mean_of(key: str, part: slice) -> float | None:
        vals = []
        for run in runs:
            rows = read_metrics(run)[part]
            vals += [float(r[key]) for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
        return float(np.mean(vals)) if vals else None

    secs, tokens = [], []
    for run in runs:
        rows = read_metrics(run)
        if rows:
            secs.append(np.mean([r["time/rollout"] + r["time/score"] + r["time/update"] for r in rows]))
        sampled = _sampled_tokens(run, rows)
        if sampled is not None:
            tokens.append(sampled)
    last = slice(-10, None)
    return {
        "invalid_rate_last10": mean_of("charts/invalid_rate", last),
        "lines_last10": mean_of("charts/lines", last),
        "kl_last10": mean_of("charts/kl", last),
        "rollout_pass_first10": mean_of("charts/pass_rate", slice(0, 10)),
        "rollout_pass_last10": mean_of("charts/pass_rate", last),
        "explained_variance_last10": mean_of("charts/explained_variance", last),
        "flat_groups_last10": mean_of("charts/flat_groups", last),
        "seconds_per_iteration": float(np.mean(secs)) if secs else None,
        "sampled_tokens": float(np.mean(tokens)) if tokens else None,
    }


def build_results(cfg: ReproduceConfig, layout: Layout, wall_seconds: float | None = None) -> dict[str, Any]:
    """Every figure of the run as a JSON-ready dict (see the module docstring)."""
    sft = _load_eval(layout.sft_eval)
    out: dict[str, Any] = {"config": cfg.to_dict(), "wall_seconds": wall_seconds, "arms": {}}
    if layout.prm_quality.is_file():
        out["prm"] = json.loads(layout.prm_quality.read_text())
    labels = {}
    for src in label_sources(cfg):
        marker = layout.labels / f"{src}.{DONE}"
        if marker.is_file():
            labels[src] = json.loads(marker.read_text())
    out["labels"] = labels
    masks = _bucket_masks(sft["steps"], cfg.buckets) if sft else {}
    if sft:
        out["sft"] = {
            b: {m: bootstrap_mean(np.asarray([sft[m]])[:, mask], cfg.bootstrap).to_dict()
                for m in MEASURES if sft.get(m) is not None}
            for b, mask in masks.items()
        }  # fmt: skip
    evals = {arm: [_load_eval(r / "eval.json") for r in runs] for arm, runs in arm_runs(cfg, layout).items()}
    for arm, runs in arm_runs(cfg, layout).items():
        arm_evals = evals[arm]
        entry: dict[str, Any] = {"description": arm_description(arm), "diagnostics": _diagnostics(runs)}
        done = [e for e in arm_evals if e is not None]
        entry["seeds_done"] = len(done)
        if len(done) == len(arm_evals) and masks:
            per_bucket: dict[str, Any] = {}
            for b, mask in masks.items():
                cell: dict[str, Any] = {}
                for m in MEASURES:
                    y = _matrix(arm_evals, m)
                    if y is None:
                        continue
                    y = y[:, mask]
                    cell[m] = bootstrap_mean(y, cfg.bootstrap).to_dict()
                    if sft and sft.get(m) is not None:
                        before = np.broadcast_to(np.asarray(sft[m])[mask], y.shape)
                        cell[f"{m}_vs_sft"] = paired_difference(y, before, cfg.bootstrap).to_dict()
                    for name in dict.fromkeys(n for n in ("sparse", twin_baseline(arm)) if n and n != arm):
                        twin = evals.get(name)
                        if twin and all(e is not None for e in twin) and (yb := _matrix(twin, m)) is not None:
                            cell[f"{m}_vs_{name}"] = paired_difference(y, yb[:, mask], cfg.bootstrap).to_dict()
                per_bucket[b] = cell
            entry["buckets"] = per_bucket
        out["arms"][arm] = entry
    return out


def write_results(results: dict[str, Any], layout: Layout) -> Path:
    """Write ``results.json`` (strict JSON: no NaN)."""
    path = layout.root / "results.json"
    tmp = path.with_name("results.json.tmp")
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    """A number, or a dash when it is undefined (e.g. AUC with one class only)."""
    return "—" if value is None else fmt.format(value)


def _tokens(value: float | None) -> str:
    """A token count in thousands (k) or millions (M)."""
    if value is None:
        return "—"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _fmt(est: dict[str, Any] | None, signed: bool = False) -> str:
    if not est:
        return "—"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * est['mean'])} [{f.format(100 * est['low'])}, {f.format(100 * est['high'])}]"


def results_tables(results: dict[str, Any], measure: str = "sampled") -> list[Any]:
    """Rich tables of one measure: pass@1 by bucket per arm, the paired difference to
    ``sparse`` by bucket, and the hacking symptoms and cost per arm."""
    from rich.table import Table

    cfg = results["config"]
    buckets = [b.strip() for b in cfg["buckets"].split(",")] + ["all"]
    note = f"{cfg['seeds']} seed(s), {cfg['iterations']} RL iterations per arm; 95 % CI over tasks × seeds"
    tables = []
    what = "pass@1" if "prefix" not in measure else "line-prefix accuracy"
    name = measure.replace("_prefix_accuracy", "")
    versus = [(f"{measure}_vs_{b}", f"{name} {what}: arm − {b} (points, paired)", b) for b in baselines(list(results["arms"]))
              if compared_arms(results, b)]  # fmt: skip
    for key, title, base in ((measure, f"{name} {what} (%) on held-out test tasks", None), *versus):
        signed = base is not None
        table = Table(title=title, caption=note)
        table.add_column("arm")
        for b in buckets:
            table.add_column(f"{b} steps" if b != "all" else "all", justify="right")
        if not signed and results.get("sft"):
            table.add_row("SFT (start)", *[_fmt(results["sft"].get(b, {}).get(measure)) for b in buckets])
        for arm in compared_arms(results, base) if base else results["arms"]:
            cells = results["arms"][arm].get("buckets", {})
            table.add_row(arm, *[_fmt(cells.get(b, {}).get(key), signed=signed) for b in buckets])
        tables.append(table)
    diag = Table(title="training diagnostics (mean over seeds; last 10 iterations)")
    for col in ("arm", "rollout pass first/last 10", "invalid lines", "lines", "KL", "expl. var", "flat groups",
                "sampled tokens", "s / it"):  # fmt: skip
        diag.add_column(col, justify="left" if col == "arm" else "right")
    for arm, entry in results["arms"].items():
        d = entry["diagnostics"]
        diag.add_row(
            arm, f"{_num(d['rollout_pass_first10'], '{:.2f}')} / {_num(d['rollout_pass_last10'], '{:.2f}')}",
            _num(d["invalid_rate_last10"]), _num(d["lines_last10"], "{:.2f}"), _num(d["kl_last10"], "{:.2f}"),
            _num(d["explained_variance_last10"], "{:.2f}"), _num(d.get("flat_groups_last10"), "{:.2f}"),
            _tokens(d.get("sampled_tokens")), _num(d["seconds_per_iteration"], "{:.1f}"),
        )  # fmt: skip
    tables.append(diag)
    return tables


def prm_table(results: dict[str, Any]) -> Any:
    """The PRM's held-out figures per source policy."""
    from rich.table import Table

    table = Table(title="PRM on held-out policy responses (validation split)")
    for col in ("responses from", "programs", "AUC", "first-error acc", "MSE", "ECE", "+1 share"):
        table.add_column(col, justify="right" if col != "responses from" else "left")
    for src, m in results.get("prm", {}).get("heldout", {}).items():
        table.add_row(src, str(m["n"]), _num(m.get("auc")), _num(m.get("first_error_acc")),
                      _num(m.get("mse")), _num(m.get("ece")), _num(m.get("positive_fraction"), "{:.2f}"))  # fmt: skip
    return table


def markdown_report(results: dict[str, Any]) -> str:
    """The run's tables as Markdown (written to ``results.md`` beside ``results.json``)."""
    cfg = results["config"]
    buckets = [b.strip() for b in cfg["buckets"].split(",")] + ["all"]
    head = "| arm | " + " | ".join(f"{b} steps" if b != "all" else "all" for b in buckets) + " |"
    rule = "|---" * (len(buckets) + 1) + "|"
    out = [f"# codegym reproduce: preset `{cfg['preset']}`, {cfg['seeds']} seed(s), "
           f"{cfg['iterations']} RL iterations per arm", ""]  # fmt: skip
    if results.get("wall_seconds"):
        out += [f"Wall time: {results['wall_seconds'] / 60:.0f} min.", ""]
    for measure in MEASURES:
        what = "line-prefix accuracy" if "prefix" in measure else "pass@1"
        name = measure.replace("_prefix_accuracy", "")
        out += [f"## {name} {what} (%), held-out test tasks, 95 % CI over tasks × seeds", "", head, rule]
        if results.get("sft") and measure in results["sft"].get("all", {}):
            out.append("| SFT (start) | " + " | ".join(_fmt(results["sft"][b].get(measure)) for b in buckets) + " |")
        for arm, entry in results["arms"].items():
            cells = entry.get("buckets", {})
            out.append(f"| {arm} | " + " | ".join(_fmt(cells.get(b, {}).get(measure)) for b in buckets) + " |")
        for base in baselines(list(results["arms"])):
            key = f"{measure}_vs_{base}"
            arms = compared_arms(results, base)
            if not arms:
                continue
            out += ["", f"### {name} {what}: arm − {base} (points, paired)", "", head, rule]
            for arm in arms:
                cells = results["arms"][arm].get("buckets", {})
                out.append(f"| {arm} | " + " | ".join(_fmt(cells.get(b, {}).get(key), signed=True) for b in buckets) + " |")
        out.append("")
    out += ["## Training diagnostics (mean over seeds, last 10 iterations)", "",
            "| arm | rollout pass first / last 10 | invalid lines | lines | KL | explained var. | flat groups | "
            "sampled tokens | s / iteration |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm, entry in results["arms"].items():
        d = entry["diagnostics"]
        out.append(
            f"| {arm} | {_num(d['rollout_pass_first10'], '{:.2f}')} / {_num(d['rollout_pass_last10'], '{:.2f}')} | "
            f"{_num(d['invalid_rate_last10'])} | {_num(d['lines_last10'], '{:.2f}')} | {_num(d['kl_last10'], '{:.2f}')} | "
            f"{_num(d['explained_variance_last10'], '{:.2f}')} | {_num(d.get('flat_groups_last10'), '{:.2f}')} | "
            f"{_tokens(d.get('sampled_tokens'))} | {_num(d['seconds_per_iteration'], '{:.1f}')} |"
        )
    heldout = results.get("prm", {}).get("heldout", {})
    if heldout:
        out += ["", "## PRM on held-out policy responses (validation split)", "",
                "| responses from | programs | AUC | first-error acc. | MSE | ECE | +1 share |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for src, m in heldout.items():
            out.append(f"| {src} | {m['n']} | {_num(m.get('auc'))} | {_num(m.get('first_error_acc'))} | "
                       f"{_num(m.get('mse'))} | {_num(m.get('ece'))} | {_num(m.get('positive_fraction'), '{:.2f}')} |")  # fmt: skip
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ plots
def _mean_run(label: str, runs: list[Path], keys: tuple[str, ...]) -> Any:
    """A :class:`codegym.reporting.plotting.Run` whose rows are the seeds' mean per iteration."""
    from codegym.reporting.plotting import Run

    per_seed = [read_metrics(run) for run in runs]
    per_seed = [rows for rows in per_seed if rows]
    n = min((len(rows) for rows in per_seed), default=0)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"iteration": per_seed[0][i]["iteration"]}
        for key in keys:
            vals = [r[i].get(key) for r in per_seed]
            vals = [float(v) for v in vals if isinstance(v, (int, float)) and np.isfinite(v)]
            if vals:
                row[key] = float(np.mean(vals))
        rows.append(row)
    return Run(label, "iteration", rows)


def plot_rollout_curves(cfg: ReproduceConfig, layout: Layout, path: Path, window: int = 5) -> Path | None:
    """Rollout pass rate, KL, explained variance and lines per program of each arm over RL
    iterations (mean over seeds, ``window``-iteration trailing average)."""
    from codegym.reporting.plotting import learning_curves, save_figure

    metrics = (("charts/pass_rate", "rollout pass rate"), ("charts/kl", "KL to the SFT policy (nats / program)"),
               ("charts/explained_variance", "critic explained variance"), ("charts/lines", "lines per program"))  # fmt: skip
    keys = tuple(k for k, _ in metrics)
    runs = [_mean_run(arm, dirs, keys) for arm, dirs in arm_runs(cfg, layout).items()]
    runs = [r for r in runs if r.rows]
    if not runs:
        return None
    fig = learning_curves(runs, metrics=metrics, smooth=window,
                          title=f"RL arms (mean of {cfg.seeds} seed(s), {window}-iteration average)")  # fmt: skip
    return save_figure(fig, path)


def plot_buckets(results: dict[str, Any], path: Path, measure: str = "sampled") -> Path | None:
    """Held-out pass@1 by horizon bucket per arm (and the SFT start) with 95 % intervals."""
    from codegym.reporting.plotting import rates_plot, save_figure
    from codegym.reporting.stats import Rate

    buckets = [b.strip() for b in results["config"]["buckets"].split(",")] + ["all"]
    tasks = results["config"]["eval_tasks_per_bucket"]
    cells = {arm: e.get("buckets", {}) for arm, e in results["arms"].items()}
    cells["SFT (start)"] = results.get("sft", {})  # last: arms keep the colours of the curves
    series = {}
    for label, by_bucket in cells.items():
        rates = [Rate(b, e["mean"], e["low"], e["high"], e["tasks"], e["tasks"] * e["seeds"])
                 for b in buckets if (e := by_bucket.get(b, {}).get(measure))]  # fmt: skip
        if rates:
            series[label] = rates
    if not series:
        return None
    title = (f"held-out {measure} pass@1 by horizon ({tasks} tasks per bucket; 95 % CI over tasks × "
             f"{results['config']['seeds']} seed(s))")  # fmt: skip
    return save_figure(rates_plot(series, title=title, ylabel=f"{measure} pass@1"), path)


def plot_calibration(results: dict[str, Any], path: Path) -> Path | None:
    """Reliability diagram of the PRM on held-out responses of each source policy."""
    from codegym.reporting.plotting import reliability_plot, save_figure

    heldout = results.get("prm", {}).get("heldout", {})
    tables = {f"{src}: AUC {_num(m.get('auc'), '{:.2f}')}, ECE {_num(m.get('ece'), '{:.2f}')}": m["calibration"]
              for src, m in heldout.items() if m.get("calibration")}  # fmt: skip
    if not tables:
        return None
    return save_figure(reliability_plot(tables), path)


def make_report(cfg: ReproduceConfig, layout: Layout, wall_seconds: float | None = None) -> dict[str, Any]:
    """Build and write ``results.json`` and the plots; returns the results."""
    results = build_results(cfg, layout, wall_seconds)
    plots = {
        "rollout_curves": plot_rollout_curves(cfg, layout, layout.plots / "rollout_curves.png"),
        "pass_at_1_sampled": plot_buckets(results, layout.plots / "pass_at_1_sampled.png", "sampled"),
        "pass_at_1_greedy": plot_buckets(results, layout.plots / "pass_at_1_greedy.png", "greedy"),
        "prm_calibration": plot_calibration(results, layout.plots / "prm_calibration.png"),
    }
    results["plots"] = {k: str(v) for k, v in plots.items() if v is not None}  # absent: nothing to draw yet
    write_results(results, layout)
    (layout.root / "results.md").write_text(markdown_report(results), encoding="utf-8")
    return results


__all__ = ["Estimate", "build_results", "make_report", "markdown_report", "prm_table", "results_tables", "write_results"]
