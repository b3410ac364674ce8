"""SFT warm start: the embedded default policy, trained from scratch on a suite's solutions.

``train_sft(SFTConfig(out=DIR))`` (``codegym sft --suite pipelines --out DIR``):

1. draws ``train_tasks`` tasks from the suite's train split and stores their context and
   reference solution in ``DIR/sft_data.jsonl`` (reused on resume);
2. trains a byte-level BPE tokenizer (``tokenizers``, vocabulary ``vocab_size``) on that text;
3. builds a GPT-2 model from a config (``n_layer`` x ``n_embd``, random init);
4. trains it with AdamW on the tokenisation rule's ids (context + one ``tok(line + "\\n")``
   per solution line + EOS), the loss on solution tokens and EOS only, for ``steps`` steps
   of a **step-based** schedule (linear warm-up, then constant learning rate), writing a
   resumable ``DIR/checkpoint/`` every ``checkpoint_every`` steps;
5. saves model and tokenizer with ``save_pretrained`` to ``DIR`` (so
   ``AutoModelForCausalLM.from_pretrained(DIR)`` loads it), evaluates greedy pass@1 by
   horizon bucket on the test split in the sandbox (``DIR/eval.json``) and writes a model
   card (``DIR/README.md``).

**From a pretrained model** (``SFTConfig(out=DIR, base=MODEL)``, ``codegym sft --base MODEL``):
steps 2-3 are replaced by loading ``MODEL`` (any ``save_pretrained`` causal LM, base or
instruct, or a peft LoRA adapter directory) with its own tokenizer; each task is encoded as
rollouts encode it (:func:`codegym.tokenization.policy_context`: an instruct model reads the
prompt through its chat template, ``chat_template=False`` turns that off), and the model ends
a program with its tokenizer's EOS token (the end-of-turn token of an instruct model). Every
weight is trained (fp32 master weights under ``dtype``; ``DIR`` is then a ``save_pretrained``
directory), or with ``lora_rank > 0`` only LoRA adapters on the frozen base stored in
``dtype`` (``DIR`` is then a peft adapter directory naming ``MODEL`` as its base, with the
tokenizer). Both load wherever a model directory is taken (``codegym eval --model``,
``codegym label --policy``, ``codegym train-prm --base``, ``codegym train --policy``).

Metric rows go to ``DIR/sft_log.jsonl`` every ``log_every`` steps (``losses/lm``,
``charts/learning_rate``, ``charts/tokens_per_s``; evaluations as ``val/*`` and ``test/*``),
and to TensorBoard under the same names with ``report_to="tensorboard"``.

**The default stop step.** RL needs a policy that is good but imperfect, and imperfect where
the horizon is long. The defaults (2 layers x 128, vocabulary 512, batch 16, 3000 ``basic``
pipelines tasks with 1-12 steps, AdamW lr 2e-3 after 100 warm-up steps, constant, then a
linear decay to 10 % over the last ``decay_steps=500``) stop at :data:`DEFAULT_STEPS` = 3000,
chosen by measurement; the measurements are in ``docs/calibration.md``. Without decay
(``--decay-steps 0``) the checkpoint at step ``s`` of a long run is the model a run stopped at
``s`` produces: measure with ``--eval-every`` and pick another stop step with ``--steps``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from codegym.config import Config, check_lora_fields, lora_kwargs
from codegym.evaluation import (  # noqa: F401  (re-exported: the SFT evaluation is the shared one)
    bucket_of,
    greedy_summary,
    parse_buckets,
    tasks_by_bucket,
)
from codegym.reporting.jsonio import dumps
from codegym.tasks import SuiteConfig
from codegym.tasks.registry import nest_suite_fields
from codegym.tokenization import encode_program, policy_context, task_context
from codegym.training.modelcard import config_call
from codegym.training.tracking import check_report_to
from codegym.training.trainer import Trainer, warmup_decay_lr

#: The balanced evaluation task list (:func:`codegym.evaluation.tasks_by_bucket`), older name.
eval_tasks_by_bucket = tasks_by_bucket

#: Default optimiser steps (the stop step; ``docs/calibration.md`` has its measurements).
DEFAULT_STEPS = 3000
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "sft_state.pt"
DATA_NAME = "sft_data.jsonl"
DONE_NAME = "sft_done.json"
CONFIG_NAME = "sft_config.json"
LOG_NAME = "sft_log.jsonl"
#: Settings that may change between a run and its resumption.
RESUMABLE_CHANGES = ("progress", "threads", "device", "overwrite", "sandbox", "sandbox_workers", "steps",
                     "eval_batch_size", "extra")


@dataclass
class SFTConfig(Config):
    """Settings of :func:`train_sft`."""

    out: str
    """Output directory (final model + tokenizer, checkpoint, data, eval)."""
    suite: SuiteConfig = field(default_factory=lambda: SuiteConfig(min_lines=1, max_lines=12, seed=0))
    """Tasks: the suite and its knobs (``pipelines`` with 1-12 lines, seed 0); training tasks
    come from its train split (``split``), evaluation from validation and test."""
    train_tasks: int = 3000
    """Training tasks drawn from the train split (all of a finite suite if fewer)."""
    vocab_size: int = 512
    """BPE vocabulary size."""
    n_layer: int = 2
    """Transformer blocks."""
    n_embd: int = 128
    """Hidden size."""
    n_head: int = 4
    """Attention heads."""
    n_positions: int = 1024
    """Longest sequence in tokens (context + program)."""
    steps: int = DEFAULT_STEPS
    """Optimiser steps (the stop step)."""
    batch_size: int = 16
    """Sequences per step."""
    lr: float = 2e-3
    """AdamW learning rate after warm-up (constant: the schedule is step-based)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    decay_steps: int = 500
    """Final steps over which the learning rate decays linearly to 10 % (0: constant to the
    end; capped at ``steps``). With decay a run is no longer a prefix of a longer run."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    checkpoint_every: int = 250
    """Steps between resumable checkpoints."""
    eval_every: int = 0
    """Steps between greedy pass@1 evaluations on the validation split (0: only the final
    evaluation on the test split). Used to calibrate the stop step."""
    eval_tasks: int = 800
    """Tasks of the final (test) and periodic (validation) evaluations."""
    eval_batch_size: int = 32
    """Programs sampled at once during evaluation."""
    buckets: str = "1-3,4-6,7-9,10-12"
    """Horizon buckets of the pass@1 report (``lo-hi`` ranges of ``metadata['steps']``)."""
    sandbox: str = "local"
    """Sandbox backend for evaluation (``local`` or ``docker``)."""
    sandbox_workers: int = 2
    """Parallel executions in evaluation."""
    seed: int = 0
    """Seed of the model init and batch order."""
    device: str = "cpu"
    """Torch device."""
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Compute precision of training and evaluation: ``"bf16"``/``"fp16"`` run the forward and
    backward passes under autocast and keep the weights and AdamW's state in fp32 (master
    weights: small learning rates still move them; fp16 also scales the loss). The saved
    model is fp32."""
    base: str | None = None
    """A pretrained causal LM to fine-tune instead of training GPT-2 from scratch: any
    ``save_pretrained`` directory (base or instruct) or a peft LoRA adapter directory. It keeps
    its own tokenizer, and tasks are encoded as rollouts encode them (an instruct model reads
    each prompt through its chat template); ``vocab_size``, ``n_layer``, ``n_embd`` and
    ``n_head`` are then unused and ``n_positions`` only caps the sequence length. None: the
    from-scratch path (a tokenizer trained on the data and a random-init GPT-2)."""
    lora_rank: int = 0
    """With ``base``: 0 fine-tunes every weight; r > 0 trains rank-r LoRA adapters (peft, the
    ``lora`` extra) on the frozen base, stored in the compute dtype. The saved policy is then
    a peft adapter directory (with the tokenizer), loadable wherever a model is."""
    lora_alpha: float = 0.0
    """LoRA scaling numerator (updates are scaled by alpha / rank); 0: ``2 * lora_rank``."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA adapters' input."""
    lora_targets: str = "all-linear"
    """Layers that get adapters: ``"all-linear"`` (every linear layer but the output head) or
    comma-separated module names (``"q_proj,v_proj"``)."""
    chat_template: bool = True
    """With ``base``: read each task through the tokenizer's chat template when it has one (an
    instruct model), as rollouts read it; ``--no-chat-template`` trains on the plain prompt
    (then pass ``chat_template=false`` to the commands that sample from the result too)."""
    threads: int | None = None
    """``torch.set_num_threads`` for the run (None: leave as is)."""
    progress: bool = True
    """Show rich progress bars."""
    log_every: int = 50
    """Steps between rows of ``sft_log.jsonl``."""
    report_to: str = "none"
    """Also log the metric rows to ``"tensorboard"`` (``out/tensorboard``), or ``"none"``."""
    overwrite: bool = False
    """Delete a previous run in ``out`` and start anew (default: resume it; a run with
    other settings is refused, listing the differences)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts recorded with the run."""

    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Configs that predate :class:`SuiteConfig` held ``suite``, ``min_steps``, ``max_steps``
        and ``suite_seed`` at the top level: read as ``suite`` (with a note)."""
        return nest_suite_fields(cls, data, note=note)

    def validate(self) -> SFTConfig:
        """Raise ``ValueError`` naming a bad setting; returns self (runs on construction)."""
        for name in ("train_tasks", "steps", "batch_size", "checkpoint_every", "eval_tasks", "eval_batch_size", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.decay_steps < 0:
            raise ValueError(f"decay_steps must be >= 0, got {self.decay_steps}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        parse_buckets(self.buckets)
        check_report_to(self.report_to)
        self._validate_lora()
        return self

    def _validate_lora(self) -> None:
        """The LoRA fields: only with ``base``, in range."""
        check_lora_fields(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets)
        if self.lora_rank and self.base is None:
            raise ValueError(
                f"lora_rank={self.lora_rank} needs base=DIR (--base DIR: a pretrained model to adapt); "
                "the from-scratch GPT-2 trains every weight: set lora_rank=0"
            )

    @property
    def lora(self) -> dict[str, Any] | None:
        """Keyword arguments of :func:`codegym.adapters.add_lora`, or None (no LoRA)."""
        return lora_kwargs(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets, self.seed)


class SFTBatch(NamedTuple):
    """A right-padded LM batch.

    Attributes:
        input_ids: [B, T] ids (padding = pad id).
        attention_mask: [B, T] 1 for real tokens.
        labels: [B, T] ids on solution tokens and EOS, -100 elsewhere (context, padding).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


# ---------------------------------------------------------------------- data
def _build_data(cfg: SFTConfig, path: Path) -> list[dict[str, Any]]:
    """Draw the training tasks (context + solution lines) and cache them in ``path``."""
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if len(rows) >= cfg.train_tasks:
            return rows[: cfg.train_tasks]
    suite = cfg.suite.load()
    split = cfg.suite.pick_split(suite, "train")
    size = suite.size(split)
    n = cfg.train_tasks if size is None else min(size, cfg.train_tasks)
    rows = []
    with Progress(TextColumn("[bold]sft data"), BarColumn(), MofNCompleteColumn(), disable=not cfg.progress) as prog:
        bar = prog.add_task("data", total=n)
        for i in range(n):
            t = suite.get(split, i)
            rows.append({"task_id": t.task_id, "context": task_context(t), "prompt": t.prompt,
                         "code_prefix": t.code_prefix, "lines": t.solution_lines})  # fmt: skip
            prog.update(bar, advance=1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.rename(path)
    return rows


def encode_sft_rows(tokenizer: Any, rows: Sequence[dict[str, Any]], max_len: int) -> list[tuple[list[int], int]]:
    """``(ids, prompt_len)`` per row by the tokenisation rule, EOS appended; too-long rows dropped."""
    out = []
    for r in rows:
        enc = encode_program(tokenizer, r["context"], r["lines"])
        ids = enc.input_ids + [int(tokenizer.eos_token_id)]
        if len(ids) <= max_len:
            out.append((ids, enc.prompt_len))
    return out


def policy_rows(tokenizer: Any, rows: Sequence[dict[str, Any]], chat_template: bool = True) -> list[dict[str, Any]]:
    """``rows`` with each ``context`` as a pretrained policy reads it in rollouts
    (:func:`codegym.tokenization.policy_context`: through the chat template of an instruct
    tokenizer unless ``chat_template`` is False, else the plain prompt and code prefix).

    Raises:
        ValueError: A row without its ``prompt`` (data cached by an older codegym).
    """
    out = []
    for r in rows:
        if "prompt" not in r:
            raise ValueError(f"{DATA_NAME} row {r.get('task_id')!r} has no prompt (cached by an older "
                             "codegym); start over with --overwrite")
        out.append({**r, "context": policy_context(tokenizer, r["prompt"], r.get("code_prefix", ""), chat=chat_template)})
    return out


def collate_sft(items: Sequence[tuple[list[int], int]], pad_id: int) -> SFTBatch:
    """Right-pad ``(ids, prompt_len)`` items; labels only on solution tokens and EOS."""
    B, T = len(items), max(len(ids) for ids, _ in items)
    ids_t = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    for b, (ids, plen) in enumerate(items):
        x = torch.tensor(ids, dtype=torch.long)
        ids_t[b, : len(ids)] = x
        mask[b, : len(ids)] = 1
        labels[b, plen : len(ids)] = x[plen:]
    return SFTBatch(ids_t, mask, labels)


# ------------------------------------------------------------------ training
def _lr_at(step: int, cfg: SFTConfig) -> float:
    """Linear warm-up, constant, linear decay to 10 % over the last ``decay_steps`` steps."""
    return warmup_decay_lr(step, cfg.lr, cfg.steps, cfg.warmup_steps, "linear", decay_steps=cfg.decay_steps)


class _SFTEvaluator:
    """Greedy pass@1 evaluations of a run: periodic on validation, final on test.

    The suite and the sandbox are opened on first use; :meth:`close` closes the sandbox.
    """

    def __init__(self, cfg: SFTConfig) -> None:
        self.cfg = cfg
        self.buckets = parse_buckets(cfg.buckets)
        self._suite: Any = None
        self._sandbox: Any = None
        self._val_tasks: list[Any] | None = None
        self.mp: Any = None  # the trainer's MixedPrecision: evaluations run in its precision
        #: Rollouts read an instruct model's tasks through its chat template (``--no-chat-template``: not).
        self.chat_template = cfg.chat_template

    @property
    def suite(self) -> Any:
        if self._suite is None:
            self._suite = self.cfg.suite.load()
        return self._suite

    @property
    def sandbox(self) -> Any:
        if self._sandbox is None:
            from sandboxes import make_sandbox

            self._sandbox = make_sandbox(self.cfg.sandbox, workers=self.cfg.sandbox_workers)
        return self._sandbox

    def validation(self, model: Any, tok: Any) -> dict[str, Any]:
        """Evaluate on the validation split (the model is put back in train mode)."""
        if self._val_tasks is None:
            split = "validation" if "validation" in self.suite.splits else self.suite.default_split()
            self._val_tasks = tasks_by_bucket(self.suite, split, self.cfg.eval_tasks, self.buckets)
        with self._autocast():
            res = greedy_summary(model, tok, self._val_tasks, self.sandbox, self.buckets, self.cfg.eval_batch_size,
                                 chat_template=self.chat_template)  # fmt: skip
        model.train()
        return res

    def test(self, model: Any, tok: Any, console: Any) -> dict[str, Any]:
        """Evaluate on the suite's default (test) split."""
        split = self.suite.default_split()
        tasks = tasks_by_bucket(self.suite, split, self.cfg.eval_tasks, self.buckets)
        console.print(f"evaluating greedy pass@1 on {len(tasks)} {split} tasks ...")
        with self._autocast():
            return greedy_summary(model, tok, tasks, self.sandbox, self.buckets, self.cfg.eval_batch_size,
                                  chat_template=self.chat_template)  # fmt: skip

    def _autocast(self) -> Any:
        import contextlib

        return self.mp.autocast() if self.mp is not None else contextlib.nullcontext()

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None


class SFTTrainer(Trainer):
    """SFT on the skeleton of :class:`codegym.training.trainer.Trainer` (run directory, resume,
    checkpoints, metrics, progress, model card): this class holds the model, tokenizer,
    optimiser and batch generator, and one optimiser step.

    Built from the latest complete checkpoint in ``config.out`` when there is one (resume),
    else from scratch (a tokenizer trained on the data and a randomly initialised GPT-2).
    :meth:`learn` trains to ``config.steps``, then saves the model, evaluates it on the test
    split (:attr:`result`) and writes the model card.
    """

    what = "SFT run"
    record_name = CONFIG_NAME
    metrics_name = LOG_NAME
    state_name = STATE_NAME
    resumable = RESUMABLE_CHANGES
    markers = (DATA_NAME,)
    smoke_caps = {"steps": 20, "train_tasks": 64, "eval_tasks": 2, "checkpoint_every": 10, "suite.max_lines": 3}
    eval_rows_apart = True  # rows {"step", "eval": "validation", "val/...": ...}

    def __init__(self, config: SFTConfig) -> None:
        config.validate()
        from codegym.precision import check_device

        check_device(config.device)  # a missing GPU is named as such, before anything is written
        if config.base is not None:
            from codegym.lm import check_model_dir

            check_model_dir(config.base, "--base")
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.evaluator = _SFTEvaluator(config)
        self.result: dict[str, Any] = {}
        super().__init__(config, config.out, overwrite=config.overwrite, progress=config.progress)

    def setup(self, checkpoint: Path | None) -> None:
        """Data (drawn once, cached in ``out``), tokenizer + model (trained/built, loaded from
        ``base``, or from the checkpoint), the optimiser and the batch generator."""
        cfg = self.config
        self.rows = _build_data(cfg, self.out / DATA_NAME)
        self.rng = np.random.default_rng(cfg.seed)
        if cfg.base is not None:
            self._load_base(checkpoint)
        elif checkpoint is not None:
            self._load_model(checkpoint)
        else:
            self._build_model()
        rows = policy_rows(self.tok, self.rows, cfg.chat_template) if cfg.base is not None else self.rows
        from codegym.lm import max_positions

        max_len = min(cfg.n_positions, max_positions(self.model.config, default=cfg.n_positions))
        self.data = encode_sft_rows(self.tok, rows, max_len)
        if not self.data:
            raise ValueError(f"every training program is longer than n_positions={max_len}")
        from codegym.precision import MixedPrecision

        self.mp = MixedPrecision(cfg.dtype, cfg.device)
        self.mp.prepare(self.model)  # trained weights in fp32 (master weights), frozen ones in dtype
        self.evaluator.mp = self.mp
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
        self.pad = int(self.tok.pad_token_id)
        self._tokens_seen, self._t_train = 0, time.perf_counter()
        self.console.print(
            f"SFT: {len(self.data)} programs, vocab {len(self.tok)}, {_describe(cfg, self.model)}, "
            f"{cfg.steps} steps of {cfg.batch_size}"
        )
        self.model.train()

    def _load_model(self, path: Path) -> None:
        """Tokenizer and model from checkpoint ``path`` (the from-scratch path)."""
        from transformers import AutoModelForCausalLM

        from codegym.lm import load_tokenizer, quiet_hf

        self.tok = load_tokenizer(path)
        with quiet_hf():
            self.model = AutoModelForCausalLM.from_pretrained(str(path)).to(self.config.device)

    def _load_base(self, checkpoint: Path | None) -> None:
        """The pretrained model ``base`` and its own tokenizer: every weight trained (fp32, or
        the checkpoint's weights when resuming), or LoRA adapters on the base stored in
        ``dtype`` (new, or the checkpoint's adapter)."""
        from codegym.adapters import add_lora, load_adapter
        from codegym.lm import load_causal_lm

        cfg = self.config
        if cfg.lora is None:
            self.model, self.tok = load_causal_lm(checkpoint or cfg.base, device=cfg.device, dtype="fp32")
            return
        self.model, self.tok = load_causal_lm(cfg.base, device=cfg.device, dtype=cfg.dtype)
        if checkpoint is not None:
            load_adapter(self.model, checkpoint)
        else:
            add_lora(self.model, **cfg.lora)
        self.model.to(cfg.device)

    def _build_model(self) -> None:
        """A tokenizer trained on the data and a fresh model."""
        from codegym.lm import TinyLMConfig, build_causal_lm, train_bpe_tokenizer

        cfg = self.config
        texts = [r["context"] + "".join(line + "\n" for line in r["lines"]) for r in self.rows]
        self.tok = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size)
        shape = TinyLMConfig(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions, seed=cfg.seed)
        self.model = build_causal_lm(self.tok, shape).to(cfg.device)

    def _save_model(self, path: Path) -> None:
        """Model (or, with LoRA, the adapter naming ``base``) and tokenizer to ``path``."""
        from codegym.adapters import save_adapter
        from codegym.lm import quiet_hf

        with quiet_hf():
            if self.config.lora is not None:
                save_adapter(self.model, path, self.config.base)
            else:
                self.model.save_pretrained(path)
            self.tok.save_pretrained(path)

    def train_step(self) -> dict[str, Any]:
        """One optimiser step on a random batch; the row of ``losses/lm`` and ``charts/*``."""
        cfg = self.config
        idx = self.rng.integers(0, len(self.data), size=cfg.batch_size)
        batch = collate_sft([self.data[i] for i in idx], self.pad)
        lr = _lr_at(self.step, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with self.mp.autocast():
            outputs = self.model(
                input_ids=batch.input_ids.to(cfg.device),
                attention_mask=batch.attention_mask.to(cfg.device),
                labels=batch.labels.to(cfg.device),
            )
        self.opt.zero_grad(set_to_none=True)
        self.mp.backward(outputs.loss)
        self.mp.step(self.opt, max_norm=cfg.grad_clip, params=self.model.parameters())
        self.step += 1
        self._tokens_seen += int(batch.attention_mask.sum())
        tps = self._tokens_seen / max(1e-9, time.perf_counter() - self._t_train)
        return {"step": self.step, "losses/lm": outputs.loss.item(), "charts/learning_rate": lr,
                "charts/tokens_per_s": tps, "time/elapsed": time.perf_counter() - self.started}  # fmt: skip

    def progress_info(self, row: dict[str, Any]) -> str:
        return f"loss {row['losses/lm']:.3f} {row['charts/tokens_per_s']:,.0f} tok/s"

    def evaluate(self) -> dict[str, Any]:
        """Greedy pass@1 on the validation split (every ``eval_every`` steps)."""
        res = self.evaluator.validation(self.model, self.tok)
        self.console.print(f"step {self.step}: val pass@1 " + _fmt(res))
        return {"eval": "validation", **{f"val/{k}": v for k, v in res.items()},
                "time/elapsed": time.perf_counter() - self.started}  # fmt: skip

    def save_state(self, path: Path) -> None:
        """Model, tokenizer, optimiser, batch RNG and step."""
        self._save_model(path)
        state = {"optimizer": self.opt.state_dict(), "rng": self.rng.bit_generator.state, "step": self.step}
        torch.save(state, path / STATE_NAME)

    def load_state(self, path: Path) -> None:
        state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=False)
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.opt.load_state_dict(state["optimizer"])

    def save_final(self) -> None:
        """Model and tokenizer to ``out`` (``save_pretrained``), then greedy pass@1 on the test
        split: :attr:`result`, ``eval.json`` and a ``test/*`` metrics row."""
        self.model.eval()
        self._save_model(self.out)
        train_seconds = time.perf_counter() - self.started
        res = self.evaluator.test(self.model, self.tok, self.console)
        self.result = {"steps": self.step, "train_seconds": train_seconds,
                       "total_seconds": time.perf_counter() - self.started, **res}  # fmt: skip
        (self.out / "eval.json").write_text(dumps(self.result, indent=2))
        self.log({"step": self.step, "eval": "test", **{f"test/{k}": v for k, v in res.items()}})

    def card(self) -> dict[str, Any]:
        return _card(self.config, self.model, self.tok, self.result, len(self.data), self.evaluator.suite.default_split())

    def close(self) -> None:
        """Close the evaluation sandbox and the metrics."""
        self.evaluator.close()
        super().close()


def train_sft(cfg: SFTConfig) -> dict[str, Any]:
    """Train (or resume) the SFT policy; returns the final evaluation (see the module doc).

    :class:`SFTTrainer` prepares the run directory, draws the data and builds or resumes the
    run, trains with periodic logging / validation / checkpoints, saves the final model,
    evaluates it on the test split and writes ``eval.json`` and the model card; then
    ``sft_done.json`` marks the run finished.
    """
    with SFTTrainer(cfg) as trainer:
        trainer.learn()
    (trainer.out / DONE_NAME).write_text(dumps({"steps": trainer.step, "config": cfg.to_dict()}, indent=2))
    trainer.console.print(results_table(trainer.result))
    return trainer.result


def _describe(cfg: SFTConfig, model: Any) -> str:
    """The model in words: ``2x128 GPT-2 (0.50 M params)`` or ``Qwen2ForCausalLM from DIR
    (LoRA r=8: 0.02 M of 1.10 M params trained)``."""
    total = sum(p.numel() for p in model.parameters())
    if cfg.base is None:
        return f"{cfg.n_layer}x{cfg.n_embd} GPT-2 ({total / 1e6:.2f} M params)"
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    how = f"LoRA r={cfg.lora_rank}: {trained / 1e6:.2f} M of" if cfg.lora is not None else "full fine-tune,"
    return f"{type(model).__name__} from {cfg.base} ({how} {total / 1e6:.2f} M params, {cfg.dtype})"


def _card(cfg: SFTConfig, model: Any, tok: Any, result: dict[str, Any], n_programs: int, split: str) -> dict[str, Any]:
    """The model card's parts (:func:`codegym.training.modelcard.write_model_card`)."""
    metrics = {"pass@1 (all)": result["pass@1"], "tasks": result["n"], "prefix accuracy": result["prefix_accuracy"]}
    metrics.update({f"pass@1 ({k} steps)": v["pass@1"] for k, v in result["buckets"].items()})
    load = (f'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
            f'model = AutoModelForCausalLM.from_pretrained("{cfg.out}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{cfg.out}")')
    if cfg.lora is not None:  # a peft adapter directory: the base with the adapter merged
        load = f'from codegym.lm import load_causal_lm\nmodel, tokenizer = load_causal_lm("{cfg.out}")'
    usage = f"""
{load}

# or as a codegym agent, e.g. greedy rollouts:
#   codegym eval --suite {cfg.suite.name} --agent hf --model {cfg.out} --agent-arg greedy=true
"""
    if cfg.base is None:
        title = f"codegym SFT policy ({cfg.n_layer} x {cfg.n_embd} GPT-2, {cfg.suite.name})"
        origin = ("A small causal language model trained from scratch by `codegym sft` (a byte-level BPE "
                  "tokenizer trained on the data, a randomly initialised GPT-2)")  # fmt: skip
    else:
        kind = f"LoRA adapter (rank {cfg.lora_rank}) on" if cfg.lora is not None else "full fine-tune of"
        title = f"codegym SFT policy ({kind} {Path(cfg.base).name}, {cfg.suite.name})"
        origin = (f"A {kind} the causal language model `{cfg.base}` ({type(model).__name__}, its own "
                  f"tokenizer), trained by `codegym sft --base` in {cfg.dtype} with fp32 master weights")
    return dict(
        title=title,
        summary=(
            f"{origin} on the reference solutions of the `{cfg.suite.name}` suite. It writes a program "
            "one line at a time after the task's prompt and ends it with its EOS token; it is the warm "
            "start of RL in codegym (`codegym label`, `codegym train`)."
        ),
        pipeline_tag="text-generation",
        usage=usage,
        training={
            "steps": result["steps"], "batch size": cfg.batch_size, "learning rate": cfg.lr,
            "warm-up / decay steps": f"{cfg.warmup_steps} / {cfg.decay_steps}",
            "vocabulary": len(tok),
            "parameters": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M",
            "seed": cfg.seed, "training time (s)": result["train_seconds"],
        },  # fmt: skip
        reproduce=config_call(cfg, "from agents.sft import train_sft\ntrain_sft"),
        data=(
            f"{n_programs} tasks of the train split of the {cfg.suite.describe()} suite: the "
            "context (prompt) and the reference solution, loss on the solution tokens and EOS."
        ),
        metrics=metrics,
        tags=["code-generation", "sft"],
        extra=f"Metrics: greedy pass@1 on {result['n']} tasks of the `{split}` split, run in the codegym "
        "sandbox, by horizon bucket (steps of the task); prefix accuracy: the mean over programs of "
        "the fraction of reference lines reproduced, in order, before the first mismatch.",
    )


def _fmt(res: dict[str, Any]) -> str:
    parts = [f"{k}: {v['pass@1']:.2f}" for k, v in res["buckets"].items()]
    return f"{res['pass@1']:.3f} ({', '.join(parts)}; prefix acc {res['prefix_accuracy']:.2f})"


def results_table(result: dict[str, Any]) -> Any:
    """A rich table of greedy pass@1 by horizon bucket."""
    from rich.table import Table

    table = Table(title=f"SFT policy: greedy pass@1 by horizon (step {result.get('steps')})")
    table.add_column("horizon")
    table.add_column("tasks", justify="right")
    table.add_column("pass@1", justify="right")
    for name, v in result["buckets"].items():  # an empty bucket has no pass rate: "—", not "nan"
        table.add_row(name, str(v["n"]), f"{v['pass@1']:.3f}" if v["n"] else "—")
    table.add_row("all", str(result["n"]), f"{result['pass@1']:.3f}")
    return table


# -------------------------------------------------------------- default policy
def default_policy() -> Path:
    """The embedded default SFT policy, shipped inside the package (nothing is trained).

    It is this module's defaults (:class:`SFTConfig`, seed 0), built by
    ``codegym defaults build`` together with the default PRM; see :mod:`codegym.defaults`.

    Returns:
        The directory to pass to ``AutoModelForCausalLM.from_pretrained`` / ``--model``.
    """
    from codegym.defaults import policy_dir

    return policy_dir()
