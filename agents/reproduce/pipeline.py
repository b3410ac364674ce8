"""The ``codegym reproduce`` pipeline: every stage of the method, cached on disk and resumable.

Stages (each a :class:`Job`; its output lives under ``OUT`` and a finished job is skipped
when the command is re-run, an interrupted one resumes from its own checkpoint):

1. ``sft`` — the SFT policy every arm starts from (:func:`agents.sft.train_sft`).
2. ``eval:sft`` — that policy on the held-out evaluation tasks (the "before" column).
3. ``arm:sparse:0`` — the sparse PPO run of seed 0; it also saves its policy at the
   ``label_snapshots`` iterations, so labeling sees responses of RL checkpoints too.
4. ``label:SOURCE`` — responses of the SFT policy and of each snapshot, labeled by binary
   search (:class:`codegym.labeling.LabelRun`), on the train split; plus a held-out set on
   the validation split.
5. ``prm`` — the PRM trained on all train-split labels (:func:`codegym.prm.train.train_prm`)
   and its quality on the held-out policy responses (AUC, first-error accuracy, calibration).
6. ``arm:ARM:SEED`` — every other arm × seed: PPO (or, for the ``grpo*`` arms, critic-free
   GRPO, :class:`agents.grpo.trainer.GRPOTrainer`) from the SFT policy with equal iterations
   and programs per iteration, then evaluation (greedy and sampled pass@1 per task) on the
   same tasks.

``run_pipeline`` schedules jobs by their dependencies, ``jobs`` at a time (separate processes
when ``jobs > 1``), critical path first; :mod:`agents.reproduce.report` turns the outputs into
``results.json``, a table and plots.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.reproduce.config import ReproduceConfig, _arm_needs_prm, arm_settings, is_grpo_arm
from codegym.tasks import SuiteConfig
from codegym.training.rundir import prepare_run_dir

DONE = "done.json"


# ------------------------------------------------------------------------- layout
class Layout:
    """Where every stage writes, under the run directory ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        """The resolved :class:`ReproduceConfig` of the run."""
        return self.root / "reproduce_config.json"

    @property
    def sft(self) -> Path:
        """The SFT policy."""
        return self.root / "sft"

    @property
    def labeler(self) -> Path:
        """The SFT policy that completes prefixes for the labels (``label_completer_steps``)."""
        return self.root / "sft-labeler"

    @property
    def labels(self) -> Path:
        """Label files (one per source policy, train and held-out)."""
        return self.root / "labels"

    @property
    def prm(self) -> Path:
        """The PRM checkpoint."""
        return self.root / "prm"

    @property
    def prm_quality(self) -> Path:
        """The PRM's figures on held-out policy responses."""
        return self.root / "prm_quality.json"

    @property
    def sft_eval(self) -> Path:
        """Evaluation of the SFT policy."""
        return self.root / "eval_sft.json"

    def arm(self, arm: str, seed: int) -> Path:
        """Run directory of one arm and seed."""
        return self.root / "arms" / f"{arm}-s{seed}"

    def snapshot(self, iteration: int) -> Path:
        """Policy of the sparse seed-0 run after ``iteration`` iterations."""
        return self.arm("sparse", 0) / "snapshots" / f"it{iteration:04d}"

    def label_file(self, source: str, heldout: bool = False) -> Path:
        """Labels of responses by ``source`` (``sft`` or ``itNNNN``)."""
        return self.labels / (f"heldout-{source}.jsonl" if heldout else f"{source}.jsonl")

    @property
    def plots(self) -> Path:
        """PNG figures."""
        return self.root / "plots"


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _set_threads(cfg: ReproduceConfig, alone: bool = False) -> None:
    """Torch threads of this process's next job: ``threads_per_job``, or every thread for a
    job that always runs alone (the SFT stage: every other job waits for it)."""
    import torch

    if cfg.device == "cpu":
        torch.set_num_threads(cfg.threads if alone else cfg.threads_per_job)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


# --------------------------------------------------------------------------- tasks
def rl_suite(cfg: ReproduceConfig) -> Any:
    """The suite of RL, labeling and evaluation (``cfg.suite``: ``min_lines .. max_lines``)."""
    return cfg.suite.load()


def eval_tasks(cfg: ReproduceConfig) -> list[Any]:
    """The fixed held-out evaluation tasks: the first ``eval_tasks_per_bucket`` tasks of each
    horizon bucket in the test split (the same list for every arm and seed)."""
    from codegym.evaluation import parse_buckets, tasks_by_bucket

    buckets = parse_buckets(cfg.buckets)
    return tasks_by_bucket(rl_suite(cfg), "test", cfg.eval_tasks_per_bucket * len(buckets), buckets)


def ppo_config(cfg: ReproduceConfig, arm: str, seed: int) -> Any:
    """The :class:`agents.ppo.config.PPOConfig` of ``arm`` with ``seed``."""
    from agents.ppo.config import PPOConfig

    overrides = PPOConfig.upgrade(cfg.ppo)
    suite = {**cfg.suite.to_dict(), "split": "train", **overrides.pop("suite", {})}
    data = {
        "iterations": cfg.iterations, "device": cfg.device, "suite": suite,
        "max_lines": cfg.suite.max_lines + 4, **overrides, **arm_settings(arm), "seed": seed,
        "torch_threads": cfg.threads_per_job if cfg.device == "cpu" else None,
        "extra": {"reproduce_arm": arm},
    }  # fmt: skip
    return PPOConfig.from_dict(data)


def grpo_config(cfg: ReproduceConfig, arm: str, seed: int) -> Any:
    """The :class:`agents.grpo.config.GRPOConfig` of GRPO arm ``arm`` with ``seed``: the PPO
    arms' settings of every field GRPO shares with PPO (tasks, programs per iteration, token
    caps, iterations, optimiser), then the ``grpo`` overrides and the arm's own settings."""
    from agents.grpo.config import SHARED_WITH_PPO, GRPOConfig

    ppo = ppo_config(cfg, "sparse", seed).to_dict()
    data = {
        **{k: ppo[k] for k in SHARED_WITH_PPO}, **GRPOConfig.upgrade(cfg.grpo), **arm_settings(arm),
        "seed": seed, "extra": {"reproduce_arm": arm},
    }  # fmt: skip
    return GRPOConfig.from_dict(data)


# ---------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One stage of the pipeline."""

    name: str
    """Unique id, e.g. ``arm:dense:1``."""
    deps: list[str] = field(default_factory=list)
    """Jobs that must finish first."""
    critical: bool = False
    """On the path to the PRM (scheduled before other ready jobs)."""

    def done_marker(self, layout: Layout) -> Path:
        """The file whose existence means the job finished."""
        kind, _, rest = self.name.partition(":")
        if kind == "sft":
            return layout.sft / DONE
        if kind == "sft-labeler":
            return layout.labeler / DONE
        if kind == "eval":
            return layout.sft_eval
        if kind == "label":
            return layout.labels / f"{rest}.{DONE}"
        if kind == "prm":
            return layout.prm_quality
        arm, _, seed = rest.rpartition(":")
        return layout.arm(arm, int(seed)) / DONE


def label_sources(cfg: ReproduceConfig) -> list[str]:
    """Policies whose responses are labeled: ``sft`` and the sparse seed-0 snapshots."""
    return ["sft"] + [f"it{i:04d}" for i in cfg.label_snapshots]


def plan(cfg: ReproduceConfig) -> list[Job]:
    """Every job of the run with its dependencies (critical path first)."""
    jobs = [Job("sft", critical=True), Job("arm:sparse:0", ["sft"], critical=True)]
    if cfg.needs_prm:
        sources = label_sources(cfg)
        labeler = ["sft-labeler"] if cfg.label_completer_steps else []
        if labeler:
            jobs.append(Job("sft-labeler", ["sft"], critical=True))
        for src in sources:
            deps = (["sft"] if src == "sft" else ["arm:sparse:0"]) + labeler
            jobs.append(Job(f"label:{src}", deps, critical=True))
        jobs.append(Job("prm", [f"label:{s}" for s in sources], critical=True))
    jobs.append(Job("eval:sft", ["sft"]))
    for arm in cfg.arm_list:
        for seed in cfg.seed_list:
            if arm == "sparse" and seed == 0:
                continue
            deps = ["sft"] + (["prm"] if _arm_needs_prm(arm) else [])
            jobs.append(Job(f"arm:{arm}:{seed}", deps))
    return jobs


def run_job(cfg_data: dict[str, Any], root: str, name: str) -> str:
    """Run job ``name`` (in this process or a worker process); returns ``name``."""
    cfg = ReproduceConfig.from_dict(cfg_data)
    layout = Layout(root)
    kind, _, rest = name.partition(":")
    _set_threads(cfg, alone=kind == "sft")
    if kind == "sft":
        train_policy(cfg, layout)
    elif kind == "sft-labeler":
        train_labeler(cfg, layout)
    elif kind == "eval":
        evaluate_into(cfg, layout.sft, layout.sft_eval, label="sft")
    elif kind == "label":
        label_source(cfg, layout, rest)
    elif kind == "prm":
        train_and_judge_prm(cfg, layout)
    elif kind == "arm":
        arm, _, seed = rest.rpartition(":")
        run_arm(cfg, layout, arm, int(seed))
    else:  # pragma: no cover - plan() makes only the kinds above
        raise ValueError(f"unknown job {name!r}")
    return name


# ----------------------------------------------------------------------- stage: SFT
def sft_config(cfg: ReproduceConfig, layout: Layout) -> Any:
    """The :class:`agents.sft.SFTConfig` of the run (tasks of 1 .. ``suite.max_lines`` lines)."""
    from agents.sft import SFTConfig

    overrides = SFTConfig.upgrade(cfg.sft)
    suite = SuiteConfig.over(SuiteConfig.over(cfg.suite, {"min_lines": 1}), overrides.pop("suite", {}))
    data: dict[str, Any] = {
        "out": str(layout.sft), "suite": suite, "eval_tasks": 48, "device": cfg.device,
        "threads": cfg.threads if cfg.device == "cpu" else None, "progress": False,
        **overrides,
    }  # fmt: skip
    data.setdefault("buckets", cfg.buckets)
    from codegym.evaluation import parse_buckets

    lo = min(a for a, _ in parse_buckets(data["buckets"]))
    hi = max(b for _, b in parse_buckets(data["buckets"]))
    if lo < suite.min_lines or hi > suite.max_lines:
        data["buckets"] = f"{suite.min_lines}-{suite.max_lines}"
    return SFTConfig(**data)


def train_policy(cfg: ReproduceConfig, layout: Layout) -> None:
    """Train (or resume) the SFT policy; mark it done."""
    from agents.sft import train_sft

    result = train_sft(sft_config(cfg, layout))
    _write_json(layout.sft / DONE, {"finished": time.time(), "sft": _jsonable(result)})


def labeler_config(cfg: ReproduceConfig, layout: Layout) -> Any:
    """The SFT config of the labels' completer: the policy's, for ``label_completer_steps``."""
    base = sft_config(cfg, layout)
    return dataclasses.replace(base, out=str(layout.labeler), steps=cfg.label_completer_steps,
                               threads=cfg.threads_per_job if cfg.device == "cpu" else None)  # fmt: skip


def train_labeler(cfg: ReproduceConfig, layout: Layout) -> None:
    """Train (or resume) the labels' completer; mark it done."""
    from agents.sft import train_sft

    result = train_sft(labeler_config(cfg, layout))
    _write_json(layout.labeler / DONE, {"finished": time.time(), "sft": _jsonable(result)})


def _jsonable(obj: Any) -> Any:
    def fix(x: Any) -> Any:
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): fix(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        if isinstance(x, (np.floating, np.integer)):
            return fix(x.item())
        return x

    return fix(json.loads(json.dumps(obj, default=str)))


# -------------------------------------------------------------------- stage: evaluate
def evaluate_into(cfg: ReproduceConfig, policy_dir: Path, out: Path, label: str) -> dict[str, Any]:
    """Greedy and sampled pass@1 of ``policy_dir`` on :func:`eval_tasks`, per task, to ``out``."""
    from codegym.evaluation import evaluate_policy, task_horizon
    from codegym.lm import load_causal_lm
    from sandboxes import make_sandbox

    tasks = eval_tasks(cfg)
    pcfg = ppo_config(cfg, "sparse", 0)
    model, tok = load_causal_lm(policy_dir, device=cfg.device)
    limits = {"max_new_tokens": pcfg.max_new_tokens, "max_lines": pcfg.max_lines,
              "max_line_tokens": pcfg.max_line_tokens}  # fmt: skip
    with make_sandbox("local", workers=2) as box:
        greedy = evaluate_policy(model, tok, tasks, box, batch_size=100, **limits)
        sampled = (
            evaluate_policy(model, tok, tasks, box, samples=cfg.eval_samples, seed=4321, batch_size=128, **limits)
            if cfg.eval_samples
            else None
        )
    data = {
        "label": label,
        "policy": str(policy_dir),
        "task_ids": greedy.task_ids,
        "steps": [task_horizon(t) for t in tasks],
        "greedy": greedy.passed.astype(float).tolist(),
        "greedy_prefix_accuracy": greedy.prefix_accuracy.tolist(),
        "greedy_lines": greedy.num_lines.astype(float).tolist(),
        "sampled": sampled.passed.astype(float).tolist() if sampled is not None else None,
        "sampled_prefix_accuracy": sampled.prefix_accuracy.tolist() if sampled is not None else None,
        "sampled_lines": sampled.num_lines.astype(float).tolist() if sampled is not None else None,
        "eval_samples": cfg.eval_samples,
        "seconds": greedy.seconds + (sampled.seconds if sampled is not None else 0.0),
    }
    _write_json(out, data)
    return data


# ----------------------------------------------------------------------- stage: arms
def run_arm(cfg: ReproduceConfig, layout: Layout, arm: str, seed: int) -> None:
    """Train one arm × seed with PPO (resumable), save snapshots (sparse seed 0), evaluate."""
    from agents.ppo.trainer import PPOTrainer

    if is_grpo_arm(arm):
        run_grpo_arm(cfg, layout, arm, seed)
        return
    out = layout.arm(arm, seed)
    pcfg = ppo_config(cfg, arm, seed)
    prm_dir = layout.prm if pcfg.uses_prm else None
    snapshots = set(cfg.label_snapshots) if (arm == "sparse" and seed == 0 and cfg.needs_prm) else set()
    start = time.perf_counter()
    trainer = PPOTrainer(pcfg, layout.sft, out, prm_dir=prm_dir, progress=False)
    try:
        done_before = trainer.iteration
        if trainer.iteration in snapshots:  # crashed between the checkpoint and the snapshot
            _save_snapshot(trainer, layout.snapshot(trainer.iteration))

        def snapshot(row: dict[str, Any]) -> None:
            if row["iteration"] in snapshots:
                _save_snapshot(trainer, layout.snapshot(row["iteration"]))

        trainer.learn(callbacks=[snapshot])
    finally:
        trainer.close()
    seconds = time.perf_counter() - start
    evaluate_into(cfg, out / "policy", out / "eval.json", label=f"{arm}-s{seed}")
    _write_json(out / DONE, {"finished": time.time(), "train_seconds_this_call": seconds,
                             "iterations_this_call": pcfg.iterations - done_before})  # fmt: skip


def run_grpo_arm(cfg: ReproduceConfig, layout: Layout, arm: str, seed: int) -> None:
    """Train one GRPO arm × seed (resumable), then evaluate it as the PPO arms are."""
    from agents.grpo.trainer import GRPOTrainer

    out = layout.arm(arm, seed)
    gcfg = grpo_config(cfg, arm, seed)
    start = time.perf_counter()
    trainer = GRPOTrainer(gcfg, layout.sft, out, prm_dir=layout.prm if gcfg.uses_prm else None, progress=False)
    try:
        done_before = trainer.iteration
        trainer.learn()
    finally:
        trainer.close()
    seconds = time.perf_counter() - start
    evaluate_into(cfg, out / "policy", out / "eval.json", label=f"{arm}-s{seed}")
    _write_json(out / DONE, {"finished": time.time(), "train_seconds_this_call": seconds,
                             "iterations_this_call": gcfg.iterations - done_before})  # fmt: skip


def _save_snapshot(trainer: Any, path: Path) -> None:
    """Save the trainer's current policy (and tokenizer) to ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainer._unwrap(trainer.policy).save_pretrained(tmp)
    trainer.tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


# --------------------------------------------------------------------- stage: labels
def _source_dir(layout: Layout, source: str) -> Path:
    return layout.sft if source == "sft" else layout.snapshot(int(source[2:]))


def label_source(cfg: ReproduceConfig, layout: Layout, source: str) -> None:
    """Label ``label_responses`` train-split and ``heldout_responses`` validation-split
    responses of the ``source`` policy (resumable); mark done."""
    from codegym.labeling import LabelConfig, LabelRun, LabelRunConfig
    from codegym.labeling.completers import HFCompleter
    from sandboxes import make_sandbox

    sources = label_sources(cfg)
    index = sources.index(source)
    policy = _source_dir(layout, source)
    pcfg = ppo_config(cfg, "sparse", 0)
    threads = cfg.threads_per_job if cfg.device == "cpu" else None
    responder = HFCompleter(policy, max_new_tokens=pcfg.max_new_tokens, max_lines=pcfg.max_lines,
                            device=cfg.device, threads=threads)  # fmt: skip
    completer = (
        HFCompleter(layout.labeler, max_new_tokens=pcfg.max_new_tokens, max_lines=pcfg.max_lines,
                    device=cfg.device, threads=threads)
        if cfg.label_completer_steps else responder
    )  # fmt: skip
    suite = rl_suite(cfg)
    summaries = {}
    with make_sandbox("local", workers=2) as box:
        for split, n, heldout in (("train", cfg.label_responses, False), ("validation", cfg.heldout_responses, True)):
            if n == 0:
                continue
            run_cfg = LabelRunConfig(
                suite=SuiteConfig.over(cfg.suite, {"split": split}), responses=n, seed=1000 + index,
                label=LabelConfig(k=cfg.label_k, chunk=2, prefetch=True),
                completer_id=f"reproduce:{source}" + (":sft-labeler" if cfg.label_completer_steps else ""),
                first_task=index * n,
            )  # fmt: skip
            run = LabelRun(layout.label_file(source, heldout), completer, box, run_cfg, suite=suite, responder=responder)
            summaries[split] = run.run()
    _write_json(layout.labels / f"{source}.{DONE}", _jsonable({"source": source, "policy": str(policy), **summaries}))


# ------------------------------------------------------------------------ stage: PRM
def merged_labels(cfg: ReproduceConfig, layout: Layout, heldout: bool) -> Path:
    """Concatenate the label files of every source into one (rewritten each time)."""
    name = "heldout-all.jsonl" if heldout else "train-all.jsonl"
    out = layout.labels / name
    tmp = out.with_name(name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for src in label_sources(cfg):
            path = layout.label_file(src, heldout)
            if path.is_file():
                fh.write(path.read_text(encoding="utf-8"))
    os.replace(tmp, out)
    return out


def train_and_judge_prm(cfg: ReproduceConfig, layout: Layout) -> None:
    """Train the PRM on every train-split label (resumable) and judge it on held-out
    responses of each source policy: AUC, first-error accuracy, MSE, calibration."""
    from codegym.prm.train import PRMTrainConfig, train_prm

    data = merged_labels(cfg, layout, heldout=False)
    pcfg = PRMTrainConfig(
        data=str(data), base=str(layout.sft), out=str(layout.prm), device=cfg.device,
        threads=cfg.threads_per_job if cfg.device == "cpu" else None, progress=False,
        **{"steps": 600, **cfg.prm},
    )  # fmt: skip
    train_result = train_prm(pcfg)
    quality = {"train": _jsonable(train_result), "heldout": judge_prm(cfg, layout)}
    _write_json(layout.prm_quality, quality)


def judge_prm(cfg: ReproduceConfig, layout: Layout) -> dict[str, Any]:
    """The PRM's figures on held-out responses, per source and for all sources together."""
    import torch

    from codegym.lm import max_positions
    from codegym.prm.data import collate, encode_examples, read_stepwise_jsonl
    from codegym.prm.model import ProcessRewardModel
    from codegym.prm.train import evaluate_prm, line_scores
    from codegym.reporting.stats import calibration_bins, expected_calibration_error

    prm = ProcessRewardModel.from_pretrained(layout.prm, device=cfg.device)
    limit = max_positions(prm.backbone.config, default=1024)
    device = next(prm.parameters()).device
    out: dict[str, Any] = {}
    groups = {src: [layout.label_file(src, True)] for src in label_sources(cfg)}
    groups["all"] = [layout.label_file(src, True) for src in label_sources(cfg)]
    for name, paths in groups.items():
        examples = [ex for p in paths if p.is_file() for ex in read_stepwise_jsonl(p)]
        enc, _ = encode_examples(prm.tokenizer, examples, limit)
        if not enc:
            continue
        metrics = evaluate_prm(prm, enc)
        scores, positive = [], []
        with torch.no_grad():
            for lo in range(0, len(enc), 32):
                chunk = enc[lo : lo + 32]
                _, s = line_scores(prm, collate(chunk, prm.tokenizer.pad_token_id or 0), device)
                s = s.float().cpu().numpy()
                for b, x in enumerate(chunk):
                    lab = np.asarray(x.labels)
                    keep = lab != 0
                    scores.append(s[b, : len(lab)][keep])
                    positive.append(lab[keep] > 0)
        table = calibration_bins(np.concatenate(scores), np.concatenate(positive))
        out[name] = _jsonable({
            **metrics, "positive_fraction": float(np.concatenate(positive).mean()),
            "calibration": table, "ece": expected_calibration_error(table),
        })  # fmt: skip
    return out


# ------------------------------------------------------------------------ scheduler
ProgressFn = Callable[[str, str], None]


def _ready(jobs: dict[str, Any], pending: list[str], finished: set[str]) -> list[str]:
    """Pending jobs whose dependencies are finished, critical ones first, then in plan order."""
    out = [n for n in pending if all(d in finished for d in jobs[n].deps)]
    order = list(jobs)
    return sorted(out, key=lambda n: (not jobs[n].critical, order.index(n)))


def _no_event(job: str, what: str) -> None:
    return None


def _run_serial(data: dict[str, Any], root: str, jobs: dict[str, Any], pending: list[str],
                finished: set[str], emit: ProgressFn) -> list[str]:
    """Run the pending jobs one after another in this process; returns their names."""
    ran: list[str] = []
    while pending:
        nxt = _ready(jobs, pending, finished)
        if not nxt:  # pragma: no cover - plan() has no cycles
            raise RuntimeError(f"jobs {pending} wait on each other")
        name = nxt[0]
        emit(name, "start")
        run_job(data, root, name)
        emit(name, "done")
        finished.add(name)
        pending.remove(name)
        ran.append(name)
    return ran


def _run_parallel(data: dict[str, Any], root: str, jobs: dict[str, Any], pending: list[str],
                  finished: set[str], emit: ProgressFn, workers: int) -> tuple[list[str], list[str]]:
    """Run the pending jobs in ``workers`` spawned processes as their dependencies finish; no
    new job starts after a failure. Returns the names run and the errors."""
    import multiprocessing as mp

    ran: list[str] = []
    errors: list[str] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        running: dict[Future[str], str] = {}
        while pending or running:
            for name in _ready(jobs, pending, finished):
                if len(running) >= workers or errors:
                    break
                pending.remove(name)
                emit(name, "start")
                running[pool.submit(run_job, data, root, name)] = name
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    emit(name, "failed")
                    continue
                emit(name, "done")
                finished.add(name)
                ran.append(name)
    return ran, errors


def run_pipeline(
    cfg: ReproduceConfig,
    root: str | os.PathLike[str],
    on_event: ProgressFn | None = None,
) -> list[str]:
    """Run every unfinished job of :func:`plan` (``cfg.jobs`` at a time); returns the names of
    the jobs run by this call. ``on_event(job, "start" | "done")`` reports progress.

    Raises:
        RuntimeError: A job failed (the others that were running are let finish; re-running
            the command resumes).
    """
    layout = Layout(root)
    jobs = {j.name: j for j in plan(cfg)}
    finished = {n for n, j in jobs.items() if j.done_marker(layout).exists()}
    pending = [n for n in jobs if n not in finished]
    emit = on_event or _no_event
    if cfg.jobs == 1:
        return _run_serial(cfg.to_dict(), str(layout.root), jobs, pending, finished, emit)
    ran, errors = _run_parallel(cfg.to_dict(), str(layout.root), jobs, pending, finished, emit, cfg.jobs)
    if errors:
        raise RuntimeError("reproduce jobs failed (re-run to resume): " + "; ".join(errors))
    return ran


def job_progress(layout: Layout, name: str, cfg: ReproduceConfig) -> tuple[float, float, str]:
    """``(completed, total, info)`` of a job read from its files on disk (for progress bars)."""
    kind, _, rest = name.partition(":")
    try:
        if kind == "sft":
            log = layout.sft / "sft_log.jsonl"
            steps = sft_config(cfg, layout).steps
            last = _last_row(log)
            return float(last.get("step", 0) if last else 0), float(steps), ""
        if kind == "sft-labeler":
            last = _last_row(layout.labeler / "sft_log.jsonl")
            return float(last.get("step", 0) if last else 0), float(cfg.label_completer_steps), ""
        if kind == "arm":
            arm, _, seed = rest.rpartition(":")
            last = _last_row(layout.arm(arm, int(seed)) / "metrics.jsonl")
            if not last:
                return 0.0, float(cfg.iterations), ""
            return float(last["iteration"]), float(cfg.iterations), f"pass {last.get('charts/pass_rate', 0):.2f}"
        if kind == "label":
            n = 0
            for heldout in (False, True):
                path = layout.label_file(rest, heldout)
                if path.is_file():
                    n += sum(1 for _ in path.open("rb"))
            return float(n), float(cfg.label_responses + cfg.heldout_responses), ""
        if kind == "prm":
            last = _last_row(layout.prm / "metrics.jsonl")
            steps = int({"steps": 600, **cfg.prm}["steps"])
            return float(last.get("step", 0) if last else 0), float(steps), ""
    except (OSError, ValueError, KeyError):
        pass
    return 0.0, 1.0, ""


def _last_row(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    lines = [x for x in path.read_text().splitlines() if x.strip()]
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def check_or_write_config(cfg: ReproduceConfig, layout: Layout, overwrite: bool) -> None:
    """Refuse to resume a run directory made with other settings (listing the differences);
    ``overwrite`` deletes it and starts anew."""
    prepare_run_dir(
        layout.root, layout.config.name, cfg.to_dict(), overwrite=overwrite, what="reproduce run",
        ignore=("jobs", "threads", "bootstrap"),  # how it runs, not what it computes
        upgrade=lambda old: ReproduceConfig.upgrade(old, note=False),
        markers=("sft", "arms", "labels", "report.md"),
    )  # fmt: skip
    layout.root.mkdir(parents=True, exist_ok=True)
    cfg.save(layout.config)


def arm_runs(cfg: ReproduceConfig, layout: Layout) -> dict[str, list[Path]]:
    """Run dirs of each arm (seed order)."""
    return {arm: [layout.arm(arm, s) for s in cfg.seed_list] for arm in cfg.arm_list}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The PPO metrics rows of a run."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


__all__: Sequence[str] = (
    "Job", "Layout", "arm_runs", "check_or_write_config", "eval_tasks", "grpo_config", "job_progress",
    "label_sources", "plan", "ppo_config", "read_metrics", "run_job", "run_pipeline",
)  # fmt: skip
