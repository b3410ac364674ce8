"""``codegym defaults build``: rebuild the embedded default policy and PRM, seeded.

The project's own pipeline, end to end, in a work directory (every stage resumes when the
command is run again after an interruption)::

    1. SFT       codegym sft defaults (2 x 128 GPT-2, BPE 512, 3000 steps), seed S
                 -> WORK/policy (+ its greedy pass@1 by horizon on 800 test tasks)
    2. label     binary-search line labels of the policy's own sampled responses
                 (temperature 1, K completions per prefix), pipelines train split
                 -> WORK/labels.jsonl; and held-out labels on the validation split
                 -> WORK/labels-heldout.jsonl
    3. train-prm a PRM on the policy's backbone, trained on WORK/labels.jsonl -> WORK/prm
    4. export    model, tokenizer and head files -> OUT/policy, OUT/prm; the held-out rows
                 (trimmed to the stepwise fields) -> OUT/prm_heldout.jsonl
    5. measure   greedy pass@1 by horizon of OUT/policy on a check set (25 test tasks per
                 bucket), PRM AUC / first-error accuracy on OUT/prm_heldout.jsonl, and the
                 README's main job (``codegym eval ... --model default``, 200 episodes)
                 -> OUT/manifest.json with the configs, versions, timings and SHA-256s

``OUT`` defaults to the package's ``codegym/defaults`` (so a rebuild replaces the shipped
files; commit them) and ``WORK`` to ``runs/defaults-build``. The same seed, thread count and
library versions give the same files byte for byte (tested on a tiny configuration); the
build runs torch on one thread by default for that reason (other thread counts change float
rounding, so figures then agree within noise, not bit for bit).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codegym.config import Config
from codegym.defaults import (
    DEFAULTS_DIR,
    HELDOUT_NAME,
    MANIFEST_NAME,
    POLICY_NAME,
    PRM_NAME,
    sha256_file,
)
from codegym.reporting.jsonio import dumps

#: Files of a checkpoint directory that are training records, not part of the model.
_NOT_MODEL_FILES = frozenset(
    {"sft_config.json", "eval.json", "sft_done.json", "train_config.json", "final_metrics.json",
     "build_state.json"}
)
_MODEL_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
_STEPWISE_FIELDS = ("prompt", "completions", "labels", "task_id", "first_error")
#: Horizon buckets of the check set.
BUCKETS = "1-3,4-6,7-9,10-12"


@dataclass
class DefaultsBuildConfig(Config):
    """Settings of :func:`build_defaults` (``codegym defaults build``)."""

    out: str = str(DEFAULTS_DIR)
    """Where the exported files and ``manifest.json`` go (default: the package's defaults)."""
    work: str = "runs/defaults-build"
    """Work directory of the stages (resumable)."""
    seed: int = 0
    """Seed of every stage (SFT init and batches, response sampling, PRM head and batches)."""
    threads: int | None = 1
    """``torch.set_num_threads`` (default 1: one thread reproduces byte for byte and does not
    stall on a busy machine; None: torch's default, all cores)."""
    label_responses: int = 1000
    """Responses of the policy labelled for PRM training (pipelines train split)."""
    heldout_responses: int = 200
    """Responses labelled on the validation split to measure the PRM (shipped)."""
    k: int = 8
    """Completions per prefix in labeling."""
    temperature: float = 1.0
    """Sampling temperature of responses and completions."""
    workers: int = 2
    """Parallel program executions."""
    check_tasks: int = 100
    """Test tasks of the policy check set (balanced over the horizon buckets; the shipped-files
    test re-measures it, so it stays small)."""
    main_job_episodes: int = 200
    """Episodes of the README's main job measured into the manifest (0: skip)."""
    sft: dict[str, Any] = field(default_factory=dict)
    """Overrides of the SFT trainer's ``SFTConfig`` fields (none for the shipped defaults)."""
    prm: dict[str, Any] = field(default_factory=dict)
    """Overrides of ``codegym.prm.train.PRMTrainConfig`` fields (none for the shipped defaults)."""
    progress: bool = True
    """Show progress bars."""

    def validate(self) -> DefaultsBuildConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        for name in ("label_responses", "heldout_responses", "k", "workers", "check_tasks"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.main_job_episodes < 0:
            raise ValueError(f"main_job_episodes must be >= 0, got {self.main_job_episodes}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        bad = {"out", "seed", "threads", "progress"} & set(self.sft)
        bad |= {"data", "base", "out", "seed", "threads", "progress"} & set(self.prm)
        if bad:
            raise ValueError(f"set {sorted(bad)} with the build's own options, not as overrides")
        return self


def _console(cfg: DefaultsBuildConfig) -> Any:
    from rich.console import Console

    return Console(quiet=not cfg.progress)


def sft_trainer() -> Any:
    """The SFT trainer the build runs: the ``sft`` entry point of the ``codegym.trainers`` group
    (``agents.sft``: ``SFTConfig``, ``train_sft``); codegym itself never imports ``agents``.
    The policy evaluation is :mod:`codegym.evaluation`'s."""
    from codegym.plugins import TRAINERS, load

    return load(TRAINERS, "sft")


def _sft(cfg: DefaultsBuildConfig, work: Path) -> dict[str, Any]:
    sft = sft_trainer()
    out = work / POLICY_NAME
    if (out / "sft_done.json").is_file() and (out / "eval.json").is_file():
        return json.loads((out / "eval.json").read_text())
    sft_cfg = sft.SFTConfig.from_dict({**cfg.sft, "out": str(out), "seed": cfg.seed, "threads": cfg.threads,
                                       "progress": cfg.progress})  # fmt: skip
    return sft.train_sft(sft_cfg)


def _label(cfg: DefaultsBuildConfig, work: Path, split: str, responses: int, seed: int, out: Path) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codegym.labeling import HFCompleter, LabelConfig, LabelRun, LabelRunConfig
    from codegym.tasks import SuiteConfig
    from sandboxes import make_sandbox

    completer = HFCompleter(work / POLICY_NAME, temperature=cfg.temperature, threads=cfg.threads)
    run_cfg = LabelRunConfig(
        suite=SuiteConfig(split=split), responses=responses, seed=seed,
        label=LabelConfig(k=cfg.k, prefetch=True),
        completer_id=f"hf:defaults-build/policy temperature={cfg.temperature}",
    )  # fmt: skip
    with make_sandbox("local", workers=cfg.workers) as sandbox:
        job = LabelRun(out, completer, sandbox, run_cfg)
        done = len(job.resume())
        columns = (TextColumn(f"[bold]label {split}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=_console(cfg)) as progress:
            bar = progress.add_task(split, total=responses, completed=done)
            summary = job.run(on_row=lambda _row: progress.update(bar, advance=1))
    return summary


def _train_prm(cfg: DefaultsBuildConfig, work: Path) -> dict[str, Any]:
    from codegym.prm.train import PRMTrainConfig, train_prm

    out = work / PRM_NAME
    final = out / "final_metrics.json"
    if final.is_file() and (out / "prm_config.json").is_file():
        return json.loads(final.read_text())
    prm_cfg = PRMTrainConfig.from_dict({
        **cfg.prm, "data": str(work / "labels.jsonl"), "base": str(work / POLICY_NAME), "out": str(out),
        "seed": cfg.seed, "threads": cfg.threads, "progress": cfg.progress,
    })  # fmt: skip
    return train_prm(prm_cfg)


def _copy_model(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        if p.is_file() and p.suffix in _MODEL_SUFFIXES and p.name not in _NOT_MODEL_FILES:
            shutil.copyfile(p, tmp / p.name)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def _export_heldout(src: Path, dst: Path) -> int:
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    text = "".join(dumps({k: r[k] for k in _STEPWISE_FIELDS}) + "\n" for r in rows)
    dst.write_text(text, encoding="utf-8")
    return len(rows)


def measure_policy(policy: str | Path, tasks: int = 100, workers: int = 2) -> dict[str, Any]:
    """Greedy pass@1 by horizon of ``policy`` on the check set (the first test tasks of each
    bucket of :data:`BUCKETS`, ``tasks`` in all); what the shipped-files test re-measures."""
    from codegym.evaluation import greedy_summary, parse_buckets, tasks_by_bucket
    from codegym.lm import load_causal_lm
    from codegym.tasks import load_suite
    from sandboxes import make_sandbox

    buckets = parse_buckets(BUCKETS)
    check = tasks_by_bucket(load_suite("pipelines"), "test", tasks, buckets)
    model, tok = load_causal_lm(policy)
    with make_sandbox("local", workers=workers) as sandbox:
        return greedy_summary(model, tok, check, sandbox, buckets)


def measure_prm(prm_path: str | Path, heldout: str | Path) -> dict[str, Any]:
    """AUC of +1 vs -1 lines, first-error accuracy and MSE of the PRM on held-out rows."""
    from codegym.lm import max_positions
    from codegym.prm.data import encode_examples, read_stepwise_jsonl
    from codegym.prm.model import ProcessRewardModel
    from codegym.prm.train import evaluate_prm

    prm = ProcessRewardModel.from_pretrained(prm_path)
    limit = max_positions(prm.backbone.config, default=1024)
    enc, dropped = encode_examples(prm.tokenizer, read_stepwise_jsonl(heldout), limit)
    res = evaluate_prm(prm, enc)
    res["dropped_too_long"] = dropped
    return res


def _main_job(out: Path, episodes: int, work: Path) -> list[dict[str, Any]]:
    from codegym.cli import build_parser

    summary = work / "main_job.summary.json"
    args = build_parser().parse_args([
        "eval", "--suite", "pipelines", "--agent", "hf", "--model", str(out / POLICY_NAME),
        "--prm", str(out / PRM_NAME), "--agent-arg", "greedy=true", "--episodes", str(episodes),
        "--out", str(work / "main_job.jsonl"), "--summary", str(summary), "--overwrite",
    ])  # fmt: skip
    args.run(args)
    return json.loads(summary.read_text())["table"]


def build_defaults(cfg: DefaultsBuildConfig) -> dict[str, Any]:
    """Run the stages (see the module docstring); returns the manifest written to ``OUT``."""
    import torch


    cfg.validate()
    threads = torch.get_num_threads()
    try:
        return _build(cfg)
    finally:
        torch.set_num_threads(threads)  # the stages set it for the build only


def _build(cfg: DefaultsBuildConfig) -> dict[str, Any]:
    import torch

    console = _console(cfg)
    work, out = Path(cfg.work), Path(cfg.out)
    work.mkdir(parents=True, exist_ok=True)
    _record_settings(cfg, work)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    clock = _StageClock(work / "stage_seconds.json")

    console.rule("[bold]1/5 SFT policy")
    sft_eval = clock.run("sft", _sft, cfg, work)

    console.rule("[bold]2/5 labels from the policy's responses")
    label_summary = clock.run("label", _label, cfg, work, "train", cfg.label_responses, cfg.seed, work / "labels.jsonl")
    heldout_summary = clock.run("label_heldout", _label, cfg, work, "validation", cfg.heldout_responses, cfg.seed + 1,
                                work / "labels-heldout.jsonl")

    console.rule("[bold]3/5 PRM")
    prm_train = clock.run("train_prm", _train_prm, cfg, work)

    console.rule(f"[bold]4/5 export to {out}")
    out.mkdir(parents=True, exist_ok=True)
    _copy_model(work / POLICY_NAME, out / POLICY_NAME)
    _copy_model(work / PRM_NAME, out / PRM_NAME)
    n_heldout = _export_heldout(work / "labels-heldout.jsonl", out / HELDOUT_NAME)

    console.rule("[bold]5/5 measure")
    t0 = time.perf_counter()
    measured = {
        "check": measure_policy(out / POLICY_NAME, cfg.check_tasks, cfg.workers),
        "prm_heldout": measure_prm(out / PRM_NAME, out / HELDOUT_NAME),
        "main_job": _main_job(out, cfg.main_job_episodes, work) if cfg.main_job_episodes else [],
    }
    clock.seconds["measure"] = time.perf_counter() - t0  # this invocation's (it always runs)

    result = _manifest(
        cfg, work, out, seconds=clock.seconds, sft_eval=sft_eval, label_summary=label_summary,
        heldout_summary=heldout_summary, n_heldout=n_heldout, prm_train=prm_train, **measured,
    )
    (out / MANIFEST_NAME).write_text(dumps(result, indent=2) + "\n")
    console.print(summary_table(result))
    return result


def _record_settings(cfg: DefaultsBuildConfig, work: Path) -> None:
    """Write the build's settings to ``WORK/build_state.json``; refuse to resume a build
    made with other settings."""
    state_path = work / "build_state.json"
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress", "main_job_episodes", "check_tasks")}
    if state_path.is_file():
        old = json.loads(state_path.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            details = "; ".join(f"{k}: was {old.get(k)!r}, now {settings.get(k)!r}" for k in diff)
            raise ValueError(
                f"{work} holds a build with other settings ({details}); use the same settings "
                "to resume, or another --work"
            )
    state_path.write_text(dumps(settings, indent=2))


class _StageClock:
    """Wall seconds per stage, summed over every invocation (an interrupted build resumes),
    saved to ``path`` after each stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, stage: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, timed as ``stage``."""
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0
            self.path.write_text(dumps(self.seconds, indent=2))


def _manifest(
    cfg: DefaultsBuildConfig,
    work: Path,
    out: Path,
    *,
    seconds: dict[str, float],
    sft_eval: dict[str, Any],
    label_summary: dict[str, Any],
    heldout_summary: dict[str, Any],
    n_heldout: int,
    prm_train: dict[str, Any],
    check: dict[str, Any],
    prm_heldout: dict[str, Any],
    main_job: list[Any],
) -> dict[str, Any]:
    """The contents of ``OUT/manifest.json``: configs, versions, timings, figures, files."""
    import torch
    import transformers

    import codegym

    sft_cfg = json.loads((work / POLICY_NAME / "sft_config.json").read_text())
    prm_cfg = json.loads((work / PRM_NAME / "train_config.json").read_text())
    command = "codegym defaults build" + (f" --seed {cfg.seed}" if cfg.seed else "") + (
        f" --threads {cfg.threads}" if cfg.threads != 1 else "")
    return {
        "format": 1,
        "command": command,
        "build": asdict(cfg) | {"out": "codegym/defaults" if out.resolve() == DEFAULTS_DIR else str(out)},
        "versions": {"codegym": codegym.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "threads": cfg.threads if cfg.threads else torch.get_num_threads(),
        "seconds": seconds,  # wall, per stage, summed over the invocations of this build
        "policy": {
            "sft_config": {k: v for k, v in sft_cfg.items() if k not in ("out", "progress", "extra")},
            "test_eval": {k: sft_eval.get(k) for k in ("pass@1", "n", "prefix_accuracy", "buckets", "steps")},
            "check": {"split": "test", "buckets": BUCKETS, "tasks": cfg.check_tasks, **check},
            "main_job": {"episodes": cfg.main_job_episodes, "table": main_job},
        },
        "prm": {
            "train_config": {k: v for k, v in prm_cfg.items() if k not in ("data", "base", "out", "progress")},
            "labels": _label_facts(label_summary),
            "heldout_labels": _label_facts(heldout_summary) | {"split": "validation", "rows": n_heldout},
            "train_validation": {k: v for k, v in prm_train.items() if k.startswith("val/") or k in ("step", "train_rows", "val_rows")},
            "heldout": prm_heldout,
        },
        "files": _file_hashes(out),
    }


def _file_hashes(out: Path) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every exported file, by path relative to ``out``."""
    files = {}
    for p in sorted([*(out / POLICY_NAME).iterdir(), *(out / PRM_NAME).iterdir(), out / HELDOUT_NAME]):
        rel = p.relative_to(out).as_posix()
        files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return files


def _label_facts(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("responses", "fraction_passed", "fraction_revised", "label_balance", "mean_code_lines",
            "executions_per_response", "k")
    return {k: summary.get(k) for k in keys}


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def summary_table(man: dict[str, Any]) -> Any:
    """A rich table of what the embedded defaults measure (from a manifest)."""
    from rich.table import Table

    t = Table(title="embedded defaults")
    t.add_column("what")
    t.add_column("value", justify="right")
    check = man["policy"]["check"]
    cells = ", ".join(f"{b} {_f(v['pass@1'], 2)}" for b, v in check["buckets"].items())
    t.add_row(f"policy: greedy pass@1, {check['n']} test tasks (check set)", f"{_f(check['pass@1'])} ({cells})")
    test = man["policy"]["test_eval"]
    if test.get("buckets"):
        cells = ", ".join(f"{b} {_f(v['pass@1'])}" for b, v in test["buckets"].items())
        t.add_row(f"policy: greedy pass@1, {test['n']} test tasks", f"{_f(test['pass@1'])} ({cells})")
    h = man["prm"]["heldout"]
    t.add_row(f"PRM: held-out AUC ({h['n']} responses, validation split)", _f(h["auc"]))
    t.add_row("PRM: held-out first-error accuracy", _f(h["first_error_acc"]))
    size = sum(f["bytes"] for f in man["files"].values())
    t.add_row("files", f"{len(man['files'])} ({size / 1e6:.1f} MB)")
    return t


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `codegym defaults build`")
