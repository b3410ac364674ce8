"""Memory of one PPO iteration: bytes per parameter and peak, by formula and measured on CPU.

The formula adds up what one iteration holds (Qwen2/Llama-style decoder, AdamW):

* **model states**, per parameter: a trained model costs 16 bytes (fp32 weight, fp32
  gradient, two fp32 AdamW moments) in fp32 and in bf16 alike (bf16 compute keeps fp32
  master weights, see ``codegym.precision``); a frozen copy costs its storage (4 or 2
  bytes); a LoRA adapter costs 16 bytes per *adapter* parameter; under bf16 autocast the
  trained weights also get a transient bf16 copy (2 bytes);
* **rollout**: the KV cache of every sampled program and the prompts' prefill;
* **scoring** (old and reference log-probs): ``[batch, positions, vocab]`` fp32 logits
  plus log-softmax and entropy temporaries — or one chunk of positions at a time;
* **update** (one minibatch with autograd): saved activations of every layer (or, with
  gradient checkpointing, each layer's input plus one layer's worth) and the logits term.

Peak = weights + optimizer state + max(rollout, scoring, update + one model's gradients). Modes
(``--modes``):

=================  ===========================================================================
``today``          what ``agents.ppo`` holds today: fp32 policy (AdamW), a deep-copied reference,
                   a separate critic backbone (AdamW, PRM-initialised), the env's PRM copy,
                   full-vocabulary logits at every position
``bf16-master``    the same models, bf16 compute with fp32 master weights; frozen copies in bf16
``full-shared``    full fine-tune in bf16 (fp32 master), critic = value head on the policy
                   backbone, frozen reference and PRM in bf16, gradient checkpointing, chunked
                   log-probs on generated positions only
``lora-shared``    LoRA policy on a frozen bf16 base, reference = the base with the adapter
                   disabled (no copy), value head on the policy backbone, PRM in bf16, gradient
                   checkpointing, chunked log-probs
=================  ===========================================================================

Measurement (``--measure``): each mode runs in a fresh child process on a small random-init
Qwen2 model, and the peak is the child's **peak resident set size** (``VmHWM`` in
``/proc/self/status``, reset with ``/proc/self/clear_refs`` once torch and transformers are
imported, so their code is not counted). Not ``tracemalloc``: torch allocates tensor memory
with its own C++ allocator, which Python's allocator hooks never see (a 100 MB tensor shows
up as ~0 bytes there). RSS also counts allocator slack and freed-but-kept pages, so it reads
a little above the live-tensor peak.

Not in the formula, seen in the ``lora-shared`` rollout: ``generate`` reads the logits of the
last position through a non-contiguous slice ``hidden[:, -1:, :]``; with a *frozen* LM head
(LoRA) ``torch.matmul`` then does not fold the batch into one matrix product and copies the
head's weight once per row (``rollout x hidden x vocab`` elements, 128 MB for 16 rows of this
small model; 139 GB for 128 rows of a 7B model, if the same path runs on a GPU). A head that
requires grad, or a contiguous 2-D input, avoids the copy (a sampler should pass
``hidden[:, -1]`` to the head).

Engines: ``--engine raw`` (default) runs each mode's memory layout built from stock parts
(transformers, ``peft`` LoRA with ``disable_adapter()``, gradient checkpointing,
``codegym.lm.token_logprobs_chunked``, ``codegym.precision.MixedPrecision``): generate, score
with policy/reference/critic/PRM, and AdamW updates on minibatches. ``--engine trainer``
runs one real ``PPOTrainer.train_iteration`` (env, sandbox and all) on a Qwen2 stand-in, every
mode through ``PPOConfig``'s knobs (:meth:`Mode.ppo_knobs`: ``dtype``, ``lora_rank``,
``critic``, ``gradient_checkpointing``, ``logprob_chunk``), with dense PRM rewards and a
PRM-initialised critic.

Not in the formula, seen with the trainer engine: the line sampler
(``codegym.sampling.LineSampler``) computes the logits of every prompt position when it
encodes the prompts (``rollout x prompt x vocab`` fp32 values: 128 x 192 x 152k x 4 bytes =
15 GB for Qwen2's vocabulary), where generation needs only the last position's.

    python bench/memory.py                              # formula: Qwen2 0.5B / 1.5B / 7B
    python bench/memory.py --measure                    # + CPU measurement, side by side
    python bench/memory.py --measure --engine trainer   # the real PPOTrainer, every mode
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

GB = 1e9
MB = 1e6


# ----------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Shape:
    """A Qwen2-style decoder's shape (parameter counts come from a meta-device model)."""

    name: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    def config(self) -> Any:
        from transformers import Qwen2Config

        return Qwen2Config(
            hidden_size=self.hidden, num_hidden_layers=self.layers, intermediate_size=self.intermediate,
            num_attention_heads=self.heads, num_key_value_heads=self.kv_heads, vocab_size=self.vocab,
            tie_word_embeddings=self.tied, max_position_embeddings=4096,
        )  # fmt: skip

    def counts(self, lora_rank: int) -> tuple[int, int]:
        """``(parameters, LoRA parameters at rank r on every linear layer but the LM head)``."""
        import torch
        from transformers import Qwen2ForCausalLM

        with torch.device("meta"):
            model = Qwen2ForCausalLM(self.config())
        total = sum(p.numel() for p in model.parameters())
        lora = sum(
            lora_rank * (m.in_features + m.out_features)
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")
        )
        return total, lora


#: Published Qwen2 / Qwen2.5 shapes (hidden, layers, MLP, heads, KV heads, vocabulary, tied).
SHAPES = {
    "0.5B": Shape("Qwen2-0.5B", 896, 24, 4864, 14, 2, 151936, True),
    "1.5B": Shape("Qwen2-1.5B", 1536, 28, 8960, 12, 2, 151936, True),
    "7B": Shape("Qwen2-7B", 3584, 28, 18944, 28, 4, 152064, False),
}
#: The model measured on CPU (random init; a large vocabulary so the logits term shows).
SMALL = Shape("small (CPU)", 256, 4, 704, 4, 2, 16384, True)
#: The stand-in the trainer engine trains (random init; its vocabulary is its tokenizer's): large
#: enough that model states, not the env's and sandbox's fixed ~0.1 GB, dominate the peak.
TRAINER_SHAPE = Shape("Qwen2 stand-in (CPU)", 768, 8, 2048, 12, 4, 0, False)


@dataclass(frozen=True)
class Batch:
    """One iteration's sizes (defaults: ``PPOConfig``'s 16 prompts x 8 samples, 4 minibatches,
    96 new tokens, and a ~190-token prompt)."""

    rollout: int = 128
    minibatch: int = 32
    prompt: int = 192
    new: int = 96
    chunk: int = 1024
    lora_rank: int = 16
    math_attention: bool = False
    """Attention keeps its [heads, T, T] matrix (CPU/eager); False = fused/flash attention."""

    @property
    def seq(self) -> int:
        return self.prompt + self.new


@dataclass(frozen=True)
class Mode:
    """How an iteration holds its models (see the module docstring)."""

    name: str
    lora: bool = False
    bf16: bool = False
    shared_critic: bool = False
    checkpointing: bool = False
    chunked: bool = False
    prm: bool = True

    def ppo_knobs(self, batch: Batch) -> dict[str, Any]:
        """The :class:`agents.ppo.config.PPOConfig` fields that run this mode in the trainer."""
        return {
            "dtype": "bf16" if self.bf16 else "fp32", "lora_rank": batch.lora_rank if self.lora else 0,
            "critic": "shared" if self.shared_critic else "separate",
            "gradient_checkpointing": self.checkpointing, "logprob_chunk": batch.chunk if self.chunked else 0,
        }  # fmt: skip


MODES = {
    "today": Mode("today"),
    "bf16-master": Mode("bf16-master", bf16=True),
    "full-shared": Mode("full-shared", bf16=True, shared_critic=True, checkpointing=True, chunked=True),
    "lora-shared": Mode("lora-shared", lora=True, bf16=True, shared_critic=True, checkpointing=True, chunked=True),
}  # fmt: skip


# ----------------------------------------------------------------------------- formula
def state_terms(n: int, n_lora: int, mode: Mode) -> dict[str, float]:
    """Bytes of the model states: stored weights of every model, AdamW moments (8 bytes per
    trained parameter), gradients (4 bytes per trained parameter, alive during updates)."""
    frozen = 2 if mode.bf16 else 4
    trained = n_lora if mode.lora else n * (1 if mode.shared_critic else 2)
    weights = {
        "policy": n * frozen + 4 * n_lora if mode.lora else 4 * n,
        "reference": 0 if mode.lora else n * frozen,
        "critic": 0 if mode.shared_critic else 4 * n,
        "prm": n * frozen if mode.prm else 0,
    }
    # one model's gradients at a time: the policy's are freed before the critic's backward
    live_grads = 4 * (n_lora if mode.lora else n)
    return {**weights, "weights": sum(weights.values()), "optimizer": 8 * trained, "gradients": 4 * trained,
            "live_gradients": live_grads}  # fmt: skip


def activation_bytes_per_token(shape: Shape, batch: Batch, mode: Mode) -> float:
    """Saved activations of one decoder layer for one token (backward pass pending)."""
    h, i = shape.hidden, shape.intermediate
    per_layer = (28 * h + 8 * i) if mode.bf16 else (36 * h + 16 * i)
    if batch.math_attention:
        per_layer += 2 * shape.heads * batch.seq * (2 if mode.bf16 else 4)
    return per_layer


def formula(shape: Shape, batch: Batch, mode: Mode) -> dict[str, float]:
    """Every term of one iteration's memory, in bytes, and the peak."""
    n, n_lora = shape.counts(batch.lora_rank)
    p = 2 if mode.bf16 else 4
    terms = state_terms(n, n_lora, mode)
    states = terms["weights"] + terms["optimizer"] + terms["gradients"]
    # autocast keeps a bf16 copy of each fp32 trained weight it casts, for as long as its
    # context lives: the policy's in rollout and update, policy's and critic's in scoring
    cast = 2 * n if mode.bf16 and not mode.lora else 0
    cast_scoring = cast * (1 if mode.shared_critic else 2)
    # the cache grows by concatenation: old and new copies coexist for a moment
    kv = 2 * batch.rollout * batch.seq * shape.layers * 2 * shape.kv_heads * (shape.hidden // shape.heads) * p
    prefill = batch.rollout * batch.prompt * (3 * shape.intermediate + 4 * shape.hidden) * p
    score_rows = batch.chunk if mode.chunked else batch.rollout * batch.seq
    update_rows = batch.chunk if mode.chunked else batch.minibatch * batch.seq
    # bytes per (position x vocabulary entry): the logits, their fp32 log-softmax and exp
    # (entropy) and the backward's temporaries; calibrated with --measure on CPU
    logits_score = score_rows * shape.vocab * (p + 12)
    logits_update = update_rows * shape.vocab * (16 if mode.bf16 else 12)
    tokens = batch.minibatch * batch.seq
    per_token = activation_bytes_per_token(shape, batch, mode)
    if mode.checkpointing:
        acts = tokens * (shape.layers * 4 * shape.hidden + per_token)
    else:
        acts = tokens * shape.layers * per_token
    rollout = kv + prefill + cast
    scoring = logits_score + cast_scoring
    update = terms["live_gradients"] + acts + logits_update + cast
    return {
        **terms, "params": n, "lora_params": n_lora, "states": states, "bytes_per_param": states / n,
        "kv_cache": kv, "prefill": prefill, "autocast_copies": cast, "logits_score": logits_score, "logits_update": logits_update,
        "activations": acts, "rollout": rollout, "scoring": scoring, "update": update,
        "peak": terms["weights"] + terms["optimizer"] + max(rollout, scoring, update),
    }  # fmt: skip


# ----------------------------------------------------------------------------- measurement
def _rss() -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of this process in bytes."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def _reset_peak() -> None:
    """Return freed heap pages to the OS, then reset VmHWM to the current RSS (Linux >= 4.0)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: RSS keeps freed pages, phases then read low
        pass
    Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """Peak RSS per phase and overall, above the RSS at creation (the baseline)."""

    def __init__(self, record: bool = True) -> None:
        self.record = record
        if record:
            _reset_peak()
        self.base = _rss()[0]
        self.phases: dict[str, int] = {}
        self.peak = 0

    def resident(self, name: str) -> None:
        """Record what stays resident now (e.g. the model states) as ``name``."""
        if not self.record:
            return
        _reset_peak()
        self.phases[name] = _rss()[0] - self.base
        self.peak = max(self.peak, self.phases[name])

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the peak RSS of the block above the RSS at its start as ``name``."""
        if not self.record:
            yield
            return
        _reset_peak()
        start = _rss()[0]
        yield
        hwm = _rss()[1]
        self.phases[name] = hwm - start
        self.peak = max(self.peak, hwm - self.base)


#: glibc malloc: every block over 128 kB is its own mapping, returned to the OS when freed
#: (a fixed threshold turns off glibc's adaptive one, which would keep freed tensors in the
#: heap), so RSS follows the live tensors.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def measure(mode: Mode, batch: Batch, engine: str, workdir: Path, shape: Shape = SMALL) -> dict[str, Any]:
    """Run one iteration of ``mode`` in a child process (the raw engine builds ``shape``);
    returns ``{"baseline", "peak", "phases"}`` in bytes (peak and phases above the baseline).
    """
    job = {"mode": asdict(mode), "batch": asdict(batch), "engine": engine, "workdir": str(workdir),
           "shape": asdict(shape)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **MALLOC_ENV}, check=False,
    )  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"measuring {mode.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _child(job: dict[str, Any]) -> None:
    """Child process: import, reset the peak, run one iteration, print the peak."""
    import torch
    import transformers  # noqa: F401  (imported before the baseline)

    torch.set_num_threads(1)
    mode, batch = Mode(**job["mode"]), Batch(**job["batch"])
    if job["engine"] == "trainer":
        import agents.ppo.trainer  # noqa: F401

        meter = Meter()
        _trainer_iteration(mode, batch, Path(job["workdir"]), meter)
    else:
        # warm-up on a toy model: lazy imports and one-time buffers are paid before the baseline
        toy = replace(Shape(**job["shape"]), hidden=32, layers=1, intermediate=64, vocab=512)
        _raw_iteration(mode, replace(batch, rollout=2, minibatch=2, prompt=4, new=2, chunk=2), None, toy)
        meter = Meter()
        _raw_iteration(mode, batch, meter, Shape(**job["shape"]))
    print("RESULT " + json.dumps({"baseline": meter.base, "peak": meter.peak, "phases": meter.phases}), flush=True)


# ----------------------------------------------------------------------------- raw engine
def _raw_models(mode: Mode, batch: Batch, shape: Shape) -> dict[str, Any]:
    """Policy (maybe LoRA), reference, critic (or value head), PRM, optimizers, precision."""
    import torch
    from transformers import Qwen2ForCausalLM

    from codegym.precision import MixedPrecision

    torch.manual_seed(0)
    policy = Qwen2ForCausalLM(shape.config())
    mp = MixedPrecision("bf16" if mode.bf16 else "fp32")
    frozen = torch.bfloat16 if mode.bf16 else torch.float32
    prm = copy.deepcopy(policy.model).requires_grad_(False).to(frozen) if mode.prm else None
    ref = None if mode.lora else copy.deepcopy(policy).requires_grad_(False).to(frozen)
    critic = None if mode.shared_critic else copy.deepcopy(policy.model)
    if mode.lora:
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=batch.lora_rank, lora_alpha=2 * batch.lora_rank,
                                                   target_modules="all-linear", lora_dropout=0.0))  # fmt: skip
    value_head = torch.nn.Linear(shape.hidden, 1)
    policy, value_head = mp.prepare(policy), mp.prepare(value_head)
    if critic is not None:
        critic = mp.prepare(critic)
    trained = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained + (list(value_head.parameters()) if mode.shared_critic else []), lr=1e-6)
    opt_critic = None
    if critic is not None:
        opt_critic = torch.optim.AdamW(list(critic.parameters()) + list(value_head.parameters()), lr=1e-6)
    return {"policy": policy, "ref": ref, "critic": critic, "prm": prm, "head": value_head,
            "opt": opt, "opt_critic": opt_critic, "mp": mp}  # fmt: skip


def _backbone(model: Any) -> Any:
    """The decoder stack of a causal LM (through a PEFT wrapper)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def _logprobs(model: Any, ids: Any, batch: Batch, mode: Mode, value_head: Any = None) -> tuple[Any, Any]:
    """Log-probs of the generated tokens (and values from the same forward when shared)."""
    from codegym.lm import token_logprobs_chunked

    targets = ids[:, batch.prompt :]  # (B, G)
    if mode.chunked:
        hidden = _backbone(model)(input_ids=ids).last_hidden_state  # (B, T, H)
        gen = hidden[:, batch.prompt - 1 : -1]  # (B, G, H)
        lp, _ = token_logprobs_chunked(gen, model.get_output_embeddings(), targets, chunk_tokens=batch.chunk)
        values = value_head(gen).squeeze(-1) if value_head is not None else None  # (B, G)
        return lp, values
    from agents.ppo.losses import token_logprobs  # today's computation: every position's logits

    out = model(input_ids=ids, output_hidden_states=value_head is not None)
    stats = token_logprobs(out.logits[:, :-1], ids[:, 1:])
    values = value_head(out.hidden_states[-1][:, batch.prompt - 1 : -1]).squeeze(-1) if value_head is not None else None
    return stats.logprobs[:, batch.prompt - 1 :], values


def _raw_iteration(mode: Mode, batch: Batch, meter: Meter | None, shape: Shape) -> None:
    """Rollout (generate), scoring (policy, reference, critic, PRM), one epoch of updates."""
    import torch

    meter = meter or Meter(record=False)
    m = _raw_models(mode, batch, shape)
    policy, mp = m["policy"], m["mp"]
    meter.resident("weights")
    for opt in (m["opt"], m["opt_critic"]):
        _init_adam_state(opt)
    meter.resident("optimizer")
    policy.eval()  # generate with the KV cache (checkpointing turns it off in train mode)
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(shape.vocab, (batch.rollout, batch.prompt), generator=gen)  # (R, P)
    with meter.phase("rollout"), torch.no_grad(), mp.autocast():
        ids = policy.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                              max_new_tokens=batch.new, min_new_tokens=batch.new, eos_token_id=None,
                              pad_token_id=0, use_cache=True)  # fmt: skip  # (R, T)
    with meter.phase("scoring"), torch.no_grad(), mp.autocast():
        shared = m["head"] if mode.shared_critic else None
        old_lp, _ = _logprobs(policy, ids, batch, mode, shared)
        if mode.lora:
            with policy.disable_adapter():
                _logprobs(policy, ids, batch, mode)
        else:
            _logprobs(m["ref"], ids, batch, mode)
        if m["critic"] is not None:
            m["head"](m["critic"](input_ids=ids).last_hidden_state)
        if m["prm"] is not None:
            m["prm"](input_ids=ids)
    policy.train()
    with meter.phase("update"):
        _raw_update(m, mode, batch, ids, old_lp)


def _init_adam_state(opt: Any) -> None:
    """Create AdamW's moments now (a zero-lr step on zero gradients), so the update phase
    measures gradients and activations only, as in every iteration after the first."""
    import torch

    if opt is None:
        return
    params = [p for group in opt.param_groups for p in group["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    lrs = [group["lr"] for group in opt.param_groups]
    for group in opt.param_groups:
        group["lr"] = 0.0
    opt.step()
    for group, lr in zip(opt.param_groups, lrs):
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)


def _raw_update(m: dict[str, Any], mode: Mode, batch: Batch, ids: Any, old_lp: Any) -> None:
    """One epoch of minibatch updates: policy (+ shared value head), then a separate critic."""
    import torch

    policy, mp = m["policy"], m["mp"]
    if mode.checkpointing:  # for the update only: generation keeps its KV cache
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for rows in torch.arange(batch.rollout).split(batch.minibatch):
        with mp.autocast():
            lp, values = _logprobs(policy, ids[rows], batch, mode, m["head"] if mode.shared_critic else None)
            loss = -(lp - old_lp[rows]).exp().mean() + (0.0 if values is None else values.float().pow(2).mean())
        mp.backward(loss)
        mp.step(m["opt"], max_norm=1.0)
        m["opt"].zero_grad(set_to_none=True)
        if m["critic"] is not None:
            with mp.autocast():
                v = m["head"](m["critic"](input_ids=ids[rows]).last_hidden_state)
            mp.backward(v.float().pow(2).mean())
            mp.step(m["opt_critic"], max_norm=1.0)
            m["opt_critic"].zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------- trainer engine
def prepare_trainer_inputs(workdir: Path, shape: Shape = TRAINER_SHAPE) -> Shape:
    """A random-init Qwen2 stand-in policy of ``shape`` and a PRM on its backbone (built once per
    workdir); returns ``shape`` with the stand-in's vocabulary and head tying."""
    from codegym.prm import ProcessRewardModel
    from codegym.standins import build_standin

    policy = build_standin(workdir / "policy", arch="qwen2", tokenizer="qwen2", hidden_size=shape.hidden,
                           num_layers=shape.layers, intermediate_size=shape.intermediate, num_heads=shape.heads,
                           num_kv_heads=shape.kv_heads, pretrain_steps=0)  # fmt: skip
    prm = workdir / "prm"
    if not (prm / "prm_config.json").is_file():
        ProcessRewardModel.from_base(policy).save_pretrained(prm)
    config = json.loads((policy / "config.json").read_text())
    return replace(shape, vocab=int(config["vocab_size"]), tied=bool(config.get("tie_word_embeddings", False)))


def trainer_config(mode: Mode, batch: Batch) -> Any:
    """The ``PPOConfig`` of one measured iteration of ``mode``: dense PRM reward, PRM critic."""
    from agents.ppo.config import PPOConfig

    samples = 4
    return PPOConfig(
        iterations=1, critic_warmup_iterations=0, num_prompts=batch.rollout // samples, samples_per_prompt=samples,
        num_minibatches=max(1, batch.rollout // batch.minibatch), update_epochs=1, max_new_tokens=batch.new,
        dense_reward="delta", value_init="prm", checkpoint_every=10_000, torch_threads=1, sandbox_workers=1,
        **mode.ppo_knobs(batch),
    )  # fmt: skip


def _trainer_iteration(mode: Mode, batch: Batch, workdir: Path, meter: Meter) -> None:
    """One ``PPOTrainer.train_iteration`` of ``mode`` (:func:`trainer_config`)."""
    from agents.ppo.trainer import PPOTrainer

    policy, prm = workdir / "policy", workdir / "prm"
    trainer = PPOTrainer(trainer_config(mode, batch), policy, workdir / f"run-{mode.name}", prm_dir=prm, progress=False)
    meter.resident("weights")  # policy, reference, critic, PRM (+ env, sandbox, imports)
    try:
        with meter.phase("iteration"):
            trainer.train_iteration()
    finally:
        trainer.close()


# ----------------------------------------------------------------------------- report
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {list(MODES)}")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"formula shapes, of {list(SHAPES)}")
    p.add_argument("--rollout", type=int, default=128, help="programs per iteration")
    p.add_argument("--minibatch", type=int, default=32, help="programs per update minibatch")
    p.add_argument("--prompt-tokens", type=int, default=192)
    p.add_argument("--new-tokens", type=int, default=96)
    p.add_argument("--chunk", type=int, default=1024, help="positions per log-prob chunk (chunked modes)")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--measure", action="store_true", help="also measure each mode on CPU (small model)")
    p.add_argument("--engine", choices=("raw", "trainer"), default="raw")
    p.add_argument("--out", default="runs/bench-memory.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in args.modes.split(","):
        if name not in MODES:
            p.error(f"--modes: unknown mode {name!r}; choose from {list(MODES)}")
    for name in args.shapes.split(","):
        if name not in SHAPES:
            p.error(f"--shapes: unknown shape {name!r}; choose from {list(SHAPES)}")
    return args


#: The measured configuration: a CPU-sized iteration (shapes scale the same terms).
SMALL_BATCH = Batch(rollout=16, minibatch=4, prompt=64, new=32, chunk=64, lora_rank=8, math_attention=True)


def _measure_rows(args: argparse.Namespace, modes: list[Mode]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="codegym-memory-") as tmp:
        work = Path(tmp)
        shape, batch = SMALL, SMALL_BATCH
        if args.engine == "trainer":  # pipelines prompts are ~100-200 stand-in tokens
            shape, batch = prepare_trainer_inputs(work), replace(SMALL_BATCH, prompt=160)
        for mode in modes:
            got = measure(mode, batch, args.engine, work, shape)
            want = formula(shape, batch, mode)
            rows.append({"mode": mode.name, "params": want["params"], "peak": (got["peak"], want["peak"]),
                         **_compare(got["phases"], want)})  # fmt: skip
    return rows


def _compare(ph: dict[str, int], want: dict[str, float]) -> dict[str, tuple[float, float]]:
    """``{term: (measured, formula)}`` for the phases a child recorded."""
    if "iteration" in ph:  # the trainer: the built trainer, then one whole iteration
        return {"weights": (ph["weights"], want["weights"]),
                "iteration": (ph["iteration"], want["peak"] - want["weights"])}  # fmt: skip
    return {
        "weights": (ph["weights"], want["weights"]),
        "optimizer": (ph["optimizer"] - ph["weights"], want["optimizer"]),
        "rollout": (ph["rollout"], want["rollout"]), "scoring": (ph["scoring"], want["scoring"]),
        "update": (ph["update"], want["update"]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    args = parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return {}
    console = Console(width=150)
    batch = Batch(args.rollout, args.minibatch, args.prompt_tokens, args.new_tokens, args.chunk, args.lora_rank)
    modes = [MODES[m] for m in args.modes.split(",")]
    shapes = [SHAPES[s] for s in args.shapes.split(",")]
    result: dict[str, Any] = {"batch": asdict(batch), "formula": {}, "measured": []}
    table = Table(title=f"PPO iteration memory by formula ({batch.rollout} programs, minibatch {batch.minibatch}, "
                        f"{batch.prompt}+{batch.new} tokens), GB")  # fmt: skip
    for col in ("shape", "mode", "B/param", "states", "rollout", "scoring", "update", "peak", "≤ 80 GB"):
        table.add_column(col, justify="left" if col in ("shape", "mode") else "right")
    for shape in shapes:
        for mode in modes:
            f = formula(shape, batch, mode)
            result["formula"][f"{shape.name}/{mode.name}"] = f
            table.add_row(shape.name, mode.name, f"{f['bytes_per_param']:.1f}", f"{f['states'] / GB:.1f}",
                          f"{f['rollout'] / GB:.1f}", f"{f['scoring'] / GB:.1f}", f"{f['update'] / GB:.1f}",
                          f"{f['peak'] / GB:.1f}", "yes" if f["peak"] <= 80 * GB else "no")  # fmt: skip
    console.print(table)
    for line in goal_lines(result["formula"]):
        console.print(line, highlight=False)
    if args.measure:
        result["measured"] = _measure_rows(args, modes)
        _print_measured(console, result["measured"], args.engine)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


#: The memory goals: (shape, mode) -> the most one iteration may hold on one 80 GB GPU.
GOALS = {("7B", "lora-shared"): 80 * GB, ("1.5B", "full-shared"): 80 * GB}


def goal_lines(formulas: dict[str, dict[str, float]]) -> list[str]:
    """One line per goal whose shape and mode were computed: the formula's peak and the gap."""
    lines = []
    for (shape, mode), limit in GOALS.items():
        f = formulas.get(f"{SHAPES[shape].name}/{mode}")
        if f is None:
            continue
        gap = limit - f["peak"]
        verdict = f"met with {gap / GB:.1f} GB to spare" if gap >= 0 else f"missed by {-gap / GB:.1f} GB"
        lines.append(f"goal: {SHAPES[shape].name} {mode} <= {limit / GB:.0f} GB: {f['peak'] / GB:.1f} GB by the formula, {verdict}")
    return lines


def _print_measured(console: Any, rows: list[dict[str, Any]], engine: str) -> None:
    from rich.table import Table

    trainer = any("iteration" in r for r in rows)
    terms = ("weights", "iteration", "peak") if trainer else ("weights", "optimizer", "rollout", "scoring", "update", "peak")
    model = TRAINER_SHAPE.name if trainer else SMALL.name
    table = Table(title=f"Measured on CPU ({engine} engine, {model}, peak RSS of a child process): "
                        "measured / formula, MB")  # fmt: skip
    for col in ("mode", "params", *terms, "peak ratio"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in rows:
        cells = [f"{r[t][0] / MB:.0f} / {r[t][1] / MB:.0f}" if t in r else "" for t in terms]
        table.add_row(r["mode"], f"{r['params'] / 1e6:.1f} M", *cells, f"{r['peak'][0] / r['peak'][1]:.2f}")
    console.print(table)
    if trainer:
        console.print("trainer engine: 'weights' = the trainer once built (models, plus env, sandbox and their "
                      "imports); 'iteration' = one train_iteration above that (optimizer state included)")  # fmt: skip


if __name__ == "__main__":
    main()
