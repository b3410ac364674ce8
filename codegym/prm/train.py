"""Training a PRM on stepwise labels: regression (MSE) or BCE at each line's last token.

``train_prm(PRMTrainConfig(data=..., base=..., out=...))`` reads the stepwise JSONL
(:mod:`codegym.prm.data`), splits it by task into train/validation, builds a
:class:`~codegym.prm.model.ProcessRewardModel` from ``base`` (a causal-LM checkpoint such as
the SFT policy, or an existing PRM), and trains it with AdamW for a fixed number of steps.
Every ``log_every`` steps it writes a row to ``OUT/metrics.jsonl`` (``losses/prm``,
``charts/learning_rate``, ``charts/grad_norm``; validation metrics ``val/*`` every
``eval_every`` steps), mirrored to TensorBoard with ``report_to="tensorboard"``; every
``checkpoint_every`` steps it writes ``OUT/checkpoint/`` (model + optimiser + sampler state),
from which a rerun resumes. The final model is saved to ``OUT`` with ``save_pretrained`` (a
standard token-classification checkpoint, see :mod:`codegym.prm.model`) with a model card
``OUT/README.md``.

Validation metrics:

* ``mse`` — mean squared error of scores vs labels over all lines (neutral lines target 0);
* ``auc`` — ROC AUC of the scores of +1 vs -1 lines;
* ``first_error_acc`` — fraction of programs whose first error is localised exactly: the
  predicted first error is the first non-neutral line scoring below 0 (or none), compared
  with ``first_error`` (``None`` when the program is correct).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from codegym.config import Config
from codegym.precision import MixedPrecision
from codegym.prm.data import (
    EncodedExample,
    PRMBatch,
    collate,
    encode_examples,
    read_stepwise_jsonl,
    split_by_task,
)
from codegym.prm.model import OBJECTIVES, ProcessRewardModel
from codegym.reporting.jsonio import dumps
from codegym.training.modelcard import config_call
from codegym.training.rundir import file_digest
from codegym.training.tracking import check_report_to
from codegym.training.trainer import Trainer, warmup_decay_lr

CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "trainer_state.pt"
CONFIG_NAME = "train_config.json"
METRICS_NAME = "metrics.jsonl"
#: Settings that may change between a run and its resumption.
RESUMABLE_CHANGES = ("resume", "overwrite", "progress", "threads", "device", "eval_every", "checkpoint_every", "steps")


@dataclass
class PRMTrainConfig(Config):
    """Settings of :func:`train_prm`."""

    data: str
    """Stepwise JSONL file of labelled programs."""
    base: str
    """Checkpoint dir of the backbone: a causal LM (e.g. the SFT policy) or a PRM."""
    out: str
    """Output dir (final PRM, ``checkpoint/``, ``metrics.jsonl``)."""
    objective: str = "mse"
    """``"mse"`` (regression to +1/-1/0) or ``"bce"`` (target (label + 1) / 2)."""
    steps: int = 600
    """Optimiser steps."""
    batch_size: int = 16
    """Programs per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to 10 %)."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    val_fraction: float = 0.1
    """Fraction of tasks held out for validation."""
    eval_every: int = 100
    """Steps between validation runs (and at the end)."""
    log_every: int = 10
    """Steps between rows of ``metrics.jsonl`` (validation steps always write one)."""
    report_to: str = "none"
    """Also log the metric rows to ``"tensorboard"`` (``OUT/tensorboard``), or ``"none"``."""
    checkpoint_every: int = 100
    """Steps between resumable checkpoints."""
    seed: int = 0
    """Seed of the head init, the split and the batch order."""
    device: str = "cpu"
    """Torch device."""
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Compute precision: ``"bf16"``/``"fp16"`` run forward and backward passes under
    autocast with the weights and AdamW's state in fp32 (master weights: small learning
    rates still move them; fp16 also scales the loss). The saved PRM is fp32."""
    threads: int | None = None
    """``torch.set_num_threads`` for this run (None: leave as is)."""
    overwrite: bool = False
    """Delete a previous run in ``OUT`` and start anew (default: resume it from
    ``OUT/checkpoint``; a run with other settings or other data is refused, listing the
    differences)."""
    progress: bool = True
    """Show a rich progress bar."""

    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Configs written before ``overwrite`` held ``resume`` (its opposite): read with a note."""
        out = dict(data)
        if "resume" in out:
            out.setdefault("overwrite", not out.pop("resume"))
            if note:
                print(f"note: {cls.__name__}: resume is deprecated; read as overwrite={out['overwrite']}", file=sys.stderr)
        return out

    def validate(self) -> PRMTrainConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        check_report_to(self.report_to)
        return self


# --------------------------------------------------------------------- metrics
def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with average ranks for ties); NaN if one class is empty."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def predicted_first_error(scores: Sequence[float], labels: Sequence[int], threshold: float = 0.0) -> int | None:
    """First non-neutral line whose score is below ``threshold`` (``None`` if none)."""
    for i, (s, lab) in enumerate(zip(scores, labels)):
        if lab != 0 and s < threshold:
            return i
    return None


def line_scores(
    prm: ProcessRewardModel, batch: PRMBatch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head outputs at each line's last token: returns (raw [B, L], scores [B, L])."""
    raw_tok, _ = prm(batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))  # [B, T]
    raw = torch.gather(raw_tok, 1, batch.line_pos.to(device))  # [B, L]
    return raw, prm.to_score(raw)


def loss_fn(prm: ProcessRewardModel, raw: torch.Tensor, batch: PRMBatch) -> torch.Tensor:
    """Mean loss over real lines (MSE to the label, or BCE to (label + 1) / 2)."""
    labels = batch.labels.to(raw.device)
    mask = batch.line_mask.to(raw.device)
    if prm.objective == "bce":
        per = F.binary_cross_entropy_with_logits(raw, (labels + 1.0) / 2.0, reduction="none")
    else:
        per = (raw - labels) ** 2
    return (per * mask).sum() / mask.sum().clamp(min=1)


@torch.no_grad()
def evaluate_prm(
    prm: ProcessRewardModel, examples: Sequence[EncodedExample], batch_size: int = 32
) -> dict[str, float]:
    """Validation metrics (see the module docstring) on encoded examples."""
    device = next(prm.parameters()).device
    was_training = prm.training
    prm.eval()
    pad = prm.tokenizer.pad_token_id or 0
    all_s, all_l, correct_loc, sq = [], [], 0, []
    for lo in range(0, len(examples), batch_size):
        chunk = examples[lo : lo + batch_size]
        batch = collate(chunk, pad)
        _, scores = line_scores(prm, batch, device)
        scores = scores.float().cpu().numpy()
        for b, x in enumerate(chunk):
            s = scores[b, : len(x.labels)]
            lab = np.asarray(x.labels, dtype=np.float64)
            sq.append((s - lab) ** 2)
            keep = lab != 0
            all_s.append(s[keep])
            all_l.append(lab[keep] > 0)
            correct_loc += int(predicted_first_error(s.tolist(), x.labels) == x.first_error)
    prm.train(was_training)
    if not examples:
        return {"mse": float("nan"), "auc": float("nan"), "first_error_acc": float("nan"), "n": 0}
    return {
        "mse": float(np.concatenate(sq).mean()),
        "auc": roc_auc(np.concatenate(all_s), np.concatenate(all_l)),
        "first_error_acc": correct_loc / len(examples),
        "n": len(examples),
    }


# -------------------------------------------------------------------- training
def _lr_at(step: int, cfg: PRMTrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % at the last step."""
    return warmup_decay_lr(step, cfg.lr, cfg.steps, cfg.warmup_steps, "cosine")


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled index batches (epochs reshuffled with ``rng``)."""
    while True:
        perm = rng.permutation(n)
        for lo in range(0, n, batch_size):
            yield perm[lo : lo + batch_size]


class _PRMData(NamedTuple):
    """The encoded training and validation programs of a run."""

    train: list[EncodedExample]
    val: list[EncodedExample]
    n_rows: int
    dropped_too_long: int
    dropped_empty: int


def _load_prm(cfg: PRMTrainConfig, checkpoint: Path | None) -> ProcessRewardModel:
    """The PRM to train: from the run's checkpoint (resume) or built from ``cfg.base``."""
    if checkpoint is None:
        return ProcessRewardModel.from_base(cfg.base, objective=cfg.objective, seed=cfg.seed, device=cfg.device)  # type: ignore[arg-type]
    prm = ProcessRewardModel.from_pretrained(checkpoint, device=cfg.device)
    if prm.objective != cfg.objective:
        raise ValueError(
            f"checkpoint {checkpoint} was trained with objective {prm.objective!r}, not "
            f"{cfg.objective!r}; pass the same objective or a new --out"
        )
    return prm


def _read_data(cfg: PRMTrainConfig) -> tuple[list[Any], list[Any], list[Any]]:
    """All stepwise rows, and the training and validation rows (split by task)."""
    examples = read_stepwise_jsonl(cfg.data)
    train_ex, val_ex = split_by_task(examples, cfg.val_fraction, cfg.seed)
    if not train_ex:
        raise ValueError(f"{cfg.data}: no training rows left after the validation split; lower val_fraction")
    return examples, train_ex, val_ex


def _encode_data(
    cfg: PRMTrainConfig, prm: ProcessRewardModel, examples: list[Any], train_ex: list[Any], val_ex: list[Any]
) -> _PRMData:
    """Encode the rows with the PRM's tokenizer (too-long and empty programs dropped)."""
    from codegym.lm import max_positions

    limit = max_positions(prm.backbone.config)
    empty = sum(1 for e in examples if not e.completions)  # encode_examples drops these too
    train_enc, dropped_t = encode_examples(prm.tokenizer, train_ex, limit)
    val_enc, dropped_v = encode_examples(prm.tokenizer, val_ex, limit)
    if not train_enc:
        raise ValueError(f"{cfg.data}: every training program is longer than the PRM's {limit} positions")
    return _PRMData(train_enc, val_enc, len(examples), dropped_t + dropped_v - empty, empty)


class PRMTrainer(Trainer):
    """PRM training on the skeleton of :class:`codegym.training.trainer.Trainer` (run
    directory, resume, checkpoints, metrics, progress, model card): this class holds the PRM,
    its optimiser and batch sampler, and one optimiser step.

    A run's settings record (``OUT/train_config.json``) holds the config and the digests of
    ``data`` and ``base``: a rerun with other data or another base is refused like one with
    other settings. :meth:`learn` trains to ``config.steps`` (validation every ``eval_every``
    steps and at the end), then saves the PRM, ``final_metrics.json`` (:attr:`result`) and the
    model card.
    """

    what = "PRM training run"
    record_name = CONFIG_NAME
    metrics_name = METRICS_NAME
    state_name = STATE_NAME
    resumable = RESUMABLE_CHANGES
    markers = ("prm_config.json",)
    smoke_caps = {"steps": 10, "eval_every": 5, "checkpoint_every": 5}
    eval_at_end = True

    def __init__(self, config: PRMTrainConfig) -> None:
        config.validate()
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.last_eval: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        super().__init__(config, config.out, overwrite=config.overwrite, progress=config.progress)

    def settings(self) -> dict[str, Any]:
        """The config and the digests of its inputs (other data or base: refused)."""
        cfg = self.config
        return {**cfg.to_dict(), "data_sha256": file_digest(cfg.data), "base_sha256": file_digest(cfg.base)}

    def setup(self, checkpoint: Path | None) -> None:
        """Rows (split by task), the PRM (built from ``base`` or the checkpoint), encoded data,
        optimiser and batch sampler."""
        cfg = self.config
        rows = _read_data(cfg)
        self.prm = _load_prm(cfg, checkpoint)
        self.device = next(self.prm.parameters()).device
        self.data = _encode_data(cfg, self.prm, *rows)
        self.pad = self.prm.tokenizer.pad_token_id or 0
        self.mp = MixedPrecision(cfg.dtype, self.device)
        self.mp.prepare(self.prm)  # trained weights (backbone and head) in fp32: master weights
        self.opt = torch.optim.AdamW(self.prm.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
        self.rng = np.random.default_rng(cfg.seed)
        self.batches = _batches(len(self.data.train), cfg.batch_size, self.rng)  # lazy: draws after load_state
        self.prm.train()

    def train_step(self) -> dict[str, Any]:
        """One optimiser step on the next batch: ``losses/prm``, learning rate, gradient norm."""
        batch = collate([self.data.train[i] for i in next(self.batches)], self.pad)
        lr = _lr_at(self.step, self.config)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with self.mp.autocast():
            raw, _ = line_scores(self.prm, batch, self.device)
            loss = loss_fn(self.prm, raw.float(), batch)
        self.opt.zero_grad(set_to_none=True)
        self.mp.backward(loss)
        grad_norm = float(self.mp.step(self.opt, max_norm=self.config.grad_clip, params=self.prm.parameters()))
        self.step += 1
        return {"step": self.step, "losses/prm": loss.item(), "charts/learning_rate": lr, "charts/grad_norm": grad_norm}

    def evaluate(self) -> dict[str, Any]:
        """Validation metrics ``val/*`` (none without validation programs)."""
        with self.mp.autocast():
            self.last_eval = evaluate_prm(self.prm, self.data.val) if self.data.val else {}
        return {f"val/{k}": v for k, v in self.last_eval.items()}

    def progress_info(self, row: dict[str, Any]) -> str:
        info = f"loss {row['losses/prm']:.3f}"
        if "val/auc" in row:
            info += f" val auc {row['val/auc']:.3f} mse {row['val/mse']:.3f}"
        return info

    def save_state(self, path: Path) -> None:
        """The PRM, optimiser, sampler RNG and step."""
        self.prm.save_pretrained(path)
        # The rng state after the current epoch's permutation: a resumed run starts a new
        # epoch from it (deterministic given the checkpoint).
        torch.save({"optimizer": self.opt.state_dict(), "rng": self.rng.bit_generator.state, "step": self.step}, path / STATE_NAME)

    def load_state(self, path: Path) -> None:
        state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=False)
        self.opt.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])

    def save_final(self) -> None:
        """The PRM to ``out`` (``save_pretrained``) and ``final_metrics.json`` (:attr:`result`)."""
        self.prm.eval()
        self.prm.save_pretrained(self.out)
        self.result = {
            "step": self.step,
            "train_rows": len(self.data.train),
            "val_rows": len(self.data.val),
            "dropped_too_long": self.data.dropped_too_long,
            "dropped_empty": self.data.dropped_empty,
            "seconds": time.perf_counter() - self.started,
            **{f"val/{k}": v for k, v in self.last_eval.items()},
        }
        (self.out / "final_metrics.json").write_text(dumps(self.result, indent=2))

    def card(self) -> dict[str, Any]:
        return _card(self.config, self.prm, self.result, n_rows=self.data.n_rows)


def train_prm(cfg: PRMTrainConfig) -> dict[str, Any]:
    """Train a PRM (see the module docstring and :class:`PRMTrainer`); returns the final
    validation metrics + facts (also in ``OUT/final_metrics.json``)."""
    with PRMTrainer(cfg) as trainer:
        trainer.learn()
    return trainer.result


def _card(cfg: PRMTrainConfig, prm: ProcessRewardModel, result: dict[str, Any], n_rows: int) -> dict[str, Any]:
    """The model card's parts (:func:`codegym.training.modelcard.write_model_card`)."""
    bb = prm.backbone.config
    try:
        arch = f"a standard `{type(prm.to_token_classification()).__name__}` with one label"
    except ValueError:  # no token-classification class for this backbone: version-1 layout
        arch = "a backbone plus `score_head.safetensors` (load it with codegym)"
    score = "the head output" if prm.objective == "mse" else "2 * sigmoid(head output) - 1"
    usage = f"""
# as a codegym PRM (dense rewards; scores on the label scale [-1, 1])
import gymnasium as gym, codegym
env = gym.make("CodePRM-v0", suite="pipelines", prm="{cfg.out}")

# as a plain transformers model, head included
from transformers import AutoModelForTokenClassification, AutoTokenizer
model = AutoModelForTokenClassification.from_pretrained("{cfg.out}")
tokenizer = AutoTokenizer.from_pretrained("{cfg.out}")
# ids = tok(prompt) + sum(tok(line + "\\n")); a line's score is {score} at its last token
raw = model(input_ids).logits[..., 0]
"""
    return dict(
        title=f"codegym process reward model ({bb.model_type}, {prm.objective})",
        summary=(
            "A process reward model (PRM) trained by `codegym train-prm`: a transformer backbone "
            "with a scalar `score` head that rates every line of a program as it is written "
            f"(+1: the program so far can still be completed correctly, -1: it cannot). The score "
            f"of a line is {score} at the line's last token. Saved as {arch}."
        ),
        pipeline_tag="token-classification",
        usage=usage,
        training={
            "base": cfg.base, "objective": prm.objective, "steps": result["step"],
            "batch size": cfg.batch_size, "learning rate": cfg.lr, "seed": cfg.seed,
            "backbone": f"{bb.model_type}, {sum(p.numel() for p in prm.parameters()) / 1e6:.2f} M parameters",
            "training time (s)": result["seconds"],
        },  # fmt: skip
        reproduce=config_call(cfg, "from codegym.prm.train import train_prm\ntrain_prm"),
        data=(
            f"`{cfg.data}`: {n_rows} labelled programs (stepwise JSONL, see `codegym label`), "
            f"split by task into {result['train_rows']} training and {result['val_rows']} "
            f"validation programs (validation fraction {cfg.val_fraction}); "
            f"{result['dropped_too_long']} dropped as longer than the backbone's positions, "
            f"{result['dropped_empty']} as empty programs."
        ),
        metrics={k: v for k, v in result.items() if k.startswith("val/")},
        tags=["process-reward-model", "code-generation", "reinforcement-learning"],
        extra="Validation metrics: `val/mse` (scores vs labels), `val/auc` (ROC AUC of +1 vs -1 "
        "lines), `val/first_error_acc` (programs whose first wrong line is found exactly).",
    )
