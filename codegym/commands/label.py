"""``codegym label``: sample responses and label their lines by binary search (resumable)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich import progress as rp
from rich.table import Table

from codegym.commands.common import SUITE_NOT_EXPOSED, add_suite_args, console, resume_hint

NAME = "label"
HELP = "label sampled responses line by line (search over prefixes)"

#: LabelRunConfig fields that are no flag, and why.
NOT_EXPOSED = {
    **SUITE_NOT_EXPOSED,
    "label": "a nested LabelConfig: each of its fields is a flag (--k, --chunk, --mode, ...)",
    "completer_id": "derived from --completer and its settings",
}
#: LabelConfig fields that are no flag, and why.
LABEL_NOT_EXPOSED: dict[str, str] = {}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``label`` on the top-level sub-command parser."""
    from codegym.config import add_config_args, add_deprecated
    from codegym.labeling import LabelConfig, LabelRunConfig
    from codegym.labeling.pipeline import ROW_FORMATS

    p = subparsers.add_parser(
        NAME, help=HELP,
        description=(
            "Sample one response per index from the completer, label each line +1/-1/0 by "
            "searching (binary search or a linear scan, whichever is expected to be cheaper; "
            "--mode) for the longest prefix from which one of K completions passes "
            "every test, and append stepwise JSONL rows. Re-running the same command after "
            "a crash continues where it stopped. A summary is written beside --out. Every "
            "field of LabelRunConfig and LabelConfig is a flag; --config FILE and --set "
            "KEY=VALUE (label.KEY for LabelConfig) set any of them."
        ),
    )  # fmt: skip
    add_config_args(p, LabelRunConfig, not_exposed=NOT_EXPOSED, options={
        "format": {"choices": list(ROW_FORMATS), "help": "row format: codegym (labels +1/-1/0 per "
                   "line; default) or trl (boolean labels per step, read as is by TRL's "
                   "PRMTrainer; codegym train-prm reads both)"},
    })  # fmt: skip
    add_config_args(p, LabelConfig, not_exposed=LABEL_NOT_EXPOSED, prefix="label")
    add_deprecated(p, "--linear", "--mode linear", "label.mode", const="linear")
    add_suite_args(p)
    _add_completer_args(p)
    p.add_argument("--sandbox", default="local", help="sandbox backend: local | docker")
    p.add_argument("--workers", type=int, default=2, help="sandbox workers (parallel executions)")
    p.add_argument("--out", required=True, help="output JSONL (appended; resumes)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete --out (and its summary) and start over (default: resume it)")
    p.add_argument("--judge", action="store_true",
                   help="pipelines only: compare every line label with the exact prefix oracle "
                   "(the reference completes the prefix) and add precision, recall, first-error "
                   "agreement and executions per response, by horizon, to the summary")
    p.set_defaults(run=run, on_interrupt=resume_hint)
    return p


def _add_completer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default=None,
                   help="HF causal LM checkpoint dir (completer 'hf'); 'default' = the embedded policy")
    p.add_argument("--completer", default="hf",
                   help="hf (default: the --policy model) | reference (the reference solution "
                   "with seeded corruption; fast) | module:Class")
    p.add_argument("--corrupt-rate", type=float, default=0.15,
                   help="completer 'reference': per-line corruption probability")
    p.add_argument("--temperature", type=float, default=1.0, help="completer 'hf': temperature")
    p.add_argument("--top-p", type=float, default=1.0, help="completer 'hf': nucleus mass")
    p.add_argument("--max-lines", type=int, default=64, help="completer 'hf': longest program")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="completer 'hf': token budget per completion")
    p.add_argument("--threads", type=int, default=None, help="torch threads (completer 'hf')")
    p.add_argument("--device", default="cpu", help="completer 'hf': torch device of the model(s) (cpu, cuda, cuda:N)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16", "auto"],
                   help="completer 'hf': precision of the model weights (auto: the checkpoint's own)")
    p.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=True,
                   help="completer 'hf': read each task through an instruct model's chat template "
                   "(--no-chat-template: the plain prompt)")
    p.add_argument("--completer-policy", default=None,
                   help="completer 'hf': complete prefixes with this causal-LM dir instead of "
                   "--policy (which still writes the responses). A stronger completer labels a "
                   "weak policy's responses far better (docs/results.md)")


def _completers(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(completer, responder or None, id) of the flags: ``--completer-policy`` completes the
    prefixes of ``--policy``'s responses."""
    completer, ident = _completer(args)
    if args.completer_policy is None:
        return completer, None, ident
    if args.completer != "hf":
        raise ValueError(f"--completer-policy needs --completer hf, got --completer {args.completer}")
    policy = args.policy
    args.policy = args.completer_policy
    stronger, other = _completer(args)
    args.policy = policy
    return stronger, completer, f"responses {ident}; completions {other}"


def _completer(args: argparse.Namespace) -> tuple[Any, str]:
    from codegym.labeling import make_completer

    if args.completer == "reference":
        c = make_completer("reference", rate=args.corrupt_rate)
        return c, repr(c)
    if args.completer == "hf":
        if args.policy is None:
            raise ValueError(
                "--completer hf needs --policy DIR (a save_pretrained causal LM, e.g. "
                "`--policy default`, the embedded default policy), or use --completer reference"
            )
        c = make_completer(
            "hf", args.policy, temperature=args.temperature, top_p=args.top_p,
            max_lines=args.max_lines, max_new_tokens=args.max_new_tokens, threads=args.threads,
            device=args.device, dtype=args.dtype, chat_template=args.chat_template,
        )
        ident = (f"hf:{c.policy.resolve()} temperature={args.temperature} top_p={args.top_p} "
                 f"max_lines={args.max_lines} max_new_tokens={args.max_new_tokens}")
        ident += "" if args.dtype == "fp32" else f" dtype={args.dtype}"  # fp32 runs keep their old id
        ident += "" if args.chat_template else " chat_template=false"
        return c, ident
    c = make_completer(args.completer, args.policy)
    return c, f"{args.completer}:{args.policy}"


def summary_table(summary: dict[str, Any]) -> Table:
    """A rich table of :func:`codegym.labeling.summarize` output."""
    t = Table(title=f"labels ({summary.get('mode')}, K={summary.get('k')})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    bal = summary["label_balance"]
    lin = summary["linear"]
    rows = [
        ("responses", f"{summary['responses']}"),
        ("passed", f"{summary['passed']} ({summary['fraction_passed']:.1%})"),
        ("revised (failed, correct prefix exists)", f"{summary['revised']} ({summary['fraction_revised']:.1%})"),
        ("lines labeled", f"{summary['lines']}"),
        ("label balance +1 / -1 / 0", f"{bal['+1']:.1%} / {bal['-1']:.1%} / {bal['0']:.1%}"),
        ("mean code lines", f"{summary['mean_code_lines']:.2f}"),
        ("prefix checks / response", f"{summary['prefix_checks_per_response']:.2f}"),
        ("completions / response", f"{summary['completions_per_response']:.2f}"),
        ("executions / response", f"{summary['executions_per_response']:.2f}"),
        ("linear: prefix checks / response", f"{lin['prefix_checks_per_response']:.2f}"),
        ("linear: completions / response", f"{lin['completions_per_response']:.2f}"),
        ("linear: executions / response", f"{lin['executions_per_response']:.2f}"),
        ("every prefix: executions / response", f"{summary['exhaustive']['executions_per_response']:.2f}"),
        ("executions vs linear", f"{summary['executions_ratio_to_linear']:.2f}x"),
    ]
    for name, value in rows:
        t.add_row(name, value)
    return t


def _judge(job: Any, sandbox: Any, suite: str) -> dict[str, Any]:
    """Label quality of ``job``'s rows against the exact prefix oracle, by horizon and in all."""
    from codegym.envs.oracle import ReferenceCompletionScorer
    from codegym.labeling.quality import LabelQuality, judge_rows

    if suite != "pipelines":
        raise ValueError(f"--judge needs the exact prefix oracle of suite 'pipelines', got suite {suite!r}")
    groups = judge_rows(job.rows, lambda r: job.task_for(r["response_index"]), ReferenceCompletionScorer(sandbox),
                        lambda r: str(r["horizon"]))  # fmt: skip
    groups = {k: groups[k] for k in sorted(groups, key=int)}
    groups["all"] = sum(groups.values(), LabelQuality())
    return {k: v.summary() for k, v in groups.items()}


def quality_table(quality: dict[str, dict[str, float]]) -> Table:
    """A rich table of the ``--judge`` figures (one row per horizon, then all)."""
    t = Table(title="labels vs the exact prefix oracle")
    for col in ("horizon", "responses", "precision", "recall", "first error agrees", "executions / response"):
        t.add_column(col, justify="right")
    for key, q in quality.items():
        t.add_row(key, str(q["responses"]), f"{q['precision']:.2f}", f"{q['recall']:.2f}",
                  f"{q['first_error_agreement']:.2f}", f"{q['executions_per_response']:.1f}")  # fmt: skip
    return t


def _run_config(args: argparse.Namespace, completer_id: str) -> Any:
    """The :class:`LabelRunConfig` of the flags, ``--config`` and ``--set`` (smoke budgets applied)."""
    from codegym.config import config_data
    from codegym.labeling import LabelRunConfig
    from codegym.training.smoke import cap

    data = config_data(args)
    data["completer_id"] = completer_id
    label = data.setdefault("label", {})
    budget = {"responses": data.get("responses", 100), "k": label.get("k", 8)}
    if cap(budget, {"responses": 4, "k": 2}, "label"):
        data["responses"], label["k"] = budget["responses"], budget["k"]
    return LabelRunConfig.from_dict(data)


def _prepare(args: argparse.Namespace) -> None:
    """Check ``--workers``, resolve ``--policy default``, apply the smoke caps."""
    from codegym.defaults import resolve_model
    from codegym.training.smoke import cap

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    args.policy = resolve_model(args.policy, "policy")
    if args.completer_policy is not None:
        args.completer_policy = resolve_model(args.completer_policy, "policy")
    cap(args, {"max_lines": 8, "max_new_tokens": 64}, "label completer")


def _clear_out(args: argparse.Namespace) -> None:
    """Delete ``--out`` and its summary for ``--overwrite`` (after every flag was checked)."""
    from pathlib import Path

    from codegym.labeling import summary_path

    for path in (Path(args.out), summary_path(args.out)):
        if path.is_dir():
            raise ValueError(f"--out {path} is a directory; pass a JSONL file path")
        path.unlink(missing_ok=True)


def _label_with_progress(job: Any, total: int, done: int) -> dict[str, Any]:
    """Run ``job`` under a progress bar that shows passed, revised and executions per response."""
    stats = {"passed": 0, "revised": 0, "execs": 0, "n": 0}
    columns = [
        rp.TextColumn("[bold]label[/]"), rp.BarColumn(), rp.MofNCompleteColumn(),
        rp.TextColumn("{task.description}"), rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
    ]
    with rp.Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("", total=max(total, done), completed=done)

        def on_row(row: dict[str, Any]) -> None:
            stats["n"] += 1
            stats["passed"] += int(row["passed"])
            stats["revised"] += int(row["revised"])
            stats["execs"] += row["n_executions"]
            progress.update(
                bar, advance=1,
                description=(f"passed {stats['passed']} revised {stats['revised']} "
                             f"exec/resp {stats['execs'] / stats['n']:.1f}"),
            )

        return job.run(on_row=on_row)


def run(args: argparse.Namespace) -> int:
    """Run ``codegym label``."""
    from codegym.labeling import LabelRun, summary_path
    from codegym.labeling.pipeline import write_summary
    from sandboxes import make_sandbox

    _prepare(args)
    completer, responder, ident = _completers(args)  # checks --device before anything is loaded
    cfg = _run_config(args, ident)
    if args.overwrite:
        _clear_out(args)
    with make_sandbox(args.sandbox, workers=args.workers) as sandbox:
        job = LabelRun(args.out, completer, sandbox, cfg, responder=responder)
        done = len(job.resume())
        if done:
            console.print(f"resuming {args.out}: {done} of {cfg.responses} responses already labeled")
        summary = _label_with_progress(job, cfg.responses, done)
        if args.judge:
            summary["quality"] = _judge(job, sandbox, cfg.suite.name)
            write_summary(args.out, summary)
    console.print(summary_table(summary))
    if "quality" in summary:
        console.print(quality_table(summary["quality"]))
    console.print(f"rows: {args.out}  summary: {summary_path(args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``label`` alone (``python -m codegym.commands.label ...``)."""
    parser = argparse.ArgumentParser(prog="codegym label")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["label", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
