"""LLM-PPO with line-level rewards and a PRM-initialised critic (token-level PPO).

Reads like CleanRL's ``ppo.py``; :meth:`PPOTrainer.train_iteration` is five numbered phases:

1. **rollout** — ``num_prompts`` training tasks × ``samples_per_prompt`` programs sampled
   line by line (:class:`codegym.rollout.SamplerAgent`, the policy's own token ids kept)
   through one :class:`codegym.envs.vector.CodePRMVectorEnv` step loop
   (:func:`codegym.rollout.run_episodes`); the env names every reward term;
2. **rewards** — the episodes become a typed :class:`agents.ppo.batch.PPOBatch`: each line's
   ``info["line_rewards"]`` entry on its last token, the final step's unit-test and closing
   terms on the final token;
3. **advantages** — one no-grad :func:`agents.ppo.batch.forward` of policy, frozen reference
   and critic gives old log-probs, the per-token KL and values; −β·KL joins every drawn
   token's reward, under closed shaping the values are clamped to the shaped return's range
   (``value_bounds``), and GAE runs over tokens (:func:`agents.ppo.gae.compute_gae`);
4. **minibatch epochs** — ``update_epochs`` passes over :meth:`PPOBatch.minibatches`:
   clipped policy loss on whitened advantages (after the critic warm-up), clipped value loss,
   gradient clipping, separate Adam optimisers;
5. **logging** — a JSONL row of ``losses/*`` and ``charts/*`` per iteration (and TensorBoard
   scalars of the same names with ``report_to="tensorboard"``), and a resumable checkpoint;
   the final models get a model card (``OUT/README.md``). The run directory, resume,
   checkpoints, metrics, progress bar and card are the shared trainer skeleton's
   (:class:`codegym.training.trainer.Trainer`); this module holds the PPO iteration.

Data parallel: run under ``accelerate launch`` and each process rolls out its own tasks
(seeded by rank); gradients are averaged by DDP (``torch.distributed``; gloo on CPU). Sharding
engines (FSDP, DeepSpeed ZeRO-3) are refused: the rollout samples from the whole policy.

Precision and memory (:class:`agents.ppo.config.PPOConfig`): ``dtype`` (bf16/fp16 autocast
with fp32 master weights), ``lora_rank`` (LoRA adapters; the reference is the adapter switched
off), ``critic="shared"`` (a value head on the policy's backbone), ``gradient_checkpointing``
and ``logprob_chunk`` (log-probs from the generated positions' hidden states, a chunk of the
vocabulary projection at a time). Each is off by default, and off leaves the iteration as it
was (the same metrics rows for a fixed seed).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from agents.ppo.batch import (
    Episode,
    PolicyModel,
    PPOBatch,
    episodes_from_records,
    forward,
    split_batch,
)
from agents.ppo.config import PPOConfig
from agents.ppo.critic import (
    build_critic,
    build_value_head,
    load_value_head,
    save_critic,
    save_value_head,
)
from agents.ppo.diagnostics import sample_programs, shaping_diagnostics
from agents.ppo.gae import (
    bound_values,
    compute_gae,
    masked_mean,
    masked_whiten,
    place_rewards,
    token_potentials,
)
from agents.ppo.losses import (
    KLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
)
from agents.ppo.modelcard import copy_card_to_policy, ppo_card
from agents.ppo.shared_prompt import SplitBatch
from codegym.adapters import adapters_disabled, add_lora, load_adapter, save_adapter
from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.envs.vector import CodePRMVectorEnv
from codegym.memory import enable_checkpointing, trainable_parameters
from codegym.precision import MixedPrecision
from codegym.rollout import SamplerAgent, run_episodes
from codegym.sampling import LineSampler
from codegym.training.rundir import file_digest
from codegym.training.seeding import stream_generator, stream_rng
from codegym.training.trainer import Callback, Trainer
from sandboxes import make_sandbox

STATE = "state.pt"
REFERENCE = "reference"
#: What ``reference/`` holds for a LoRA policy (its reference is the base: no weights saved).
REFERENCE_NOTE = "reference.json"
METRICS = "metrics.jsonl"


def _check_engine(accelerator: Any) -> None:
    """Refuse a sharding engine: the rollout samples from the whole policy outside the engine's
    forward, which FSDP / DeepSpeed ZeRO-3 shard between processes."""
    kind = str(getattr(getattr(accelerator, "state", None), "distributed_type", "") or "")
    if any(name in kind for name in ("FSDP", "DEEPSPEED", "MEGATRON")):
        raise ValueError(
            f"PPOTrainer runs data-parallel only (DDP), not {kind.split('.')[-1]}: the rollout samples from the "
            "whole policy outside the engine's forward, which a sharding engine splits between processes. "
            "Launch with `accelerate launch --multi_gpu` and fit the memory with --lora-rank, --critic shared, "
            "--dtype bf16, --gradient-checkpointing and --logprob-chunk (bench/memory.py shows what each saves)"
        )


class PPOTrainer(Trainer):
    """Trains a causal-LM policy with PPO in ``CodePRM-v0``.

    Args:
        config: The :class:`PPOConfig`.
        policy_dir: ``save_pretrained`` directory of the starting policy (and its tokenizer).
        out_dir: Run directory: ``config.json``, ``metrics.jsonl``, ``reference/``,
            ``checkpoint/`` (resumable), ``policy/`` and ``critic/`` (final).
        prm_dir: PRM checkpoint (needed for dense rewards and ``value_init="prm"``).
        accelerator: An ``accelerate.Accelerator`` for data-parallel training, or None.
        on_iteration: Called with each metrics row (main process), or None.
        sandbox: A shared :class:`sandboxes.Sandbox` (e.g. a Ray pool; not closed here), or
            None to build ``config.sandbox`` with ``config.sandbox_workers`` workers.
        overwrite: Delete a previous run in ``out_dir`` and start over.
        progress: Show a progress bar while training.

    Restarting with the same ``out_dir`` and settings (policy and PRM included) resumes from
    the last checkpoint: the iteration count continues and ``metrics.jsonl`` keeps the rows
    up to that checkpoint; other settings are refused (see
    :class:`codegym.training.trainer.Trainer`). :meth:`train` (= :meth:`learn`) runs the
    iterations; :meth:`train_iteration` is one of them.
    """

    step_name = "iteration"
    total_field = "iterations"
    record_name = "config.json"
    metrics_name = METRICS
    state_name = STATE
    markers = (REFERENCE,)
    #: Config fields that may change when a run is resumed (everything else must match).
    resumable = ("iterations", "device", "torch_threads", "log_every", "checkpoint_every")
    smoke_caps = {"iterations": 2, "critic_warmup_iterations": 1, "num_prompts": 2, "samples_per_prompt": 2,
                  "num_minibatches": 1, "max_new_tokens": 48, "max_lines": 8}  # fmt: skip

    def __init__(
        self,
        config: PPOConfig,
        policy_dir: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        prm_dir: str | os.PathLike[str] | None = None,
        accelerator: Any = None,
        on_iteration: Callable[[dict[str, Any]], None] | None = None,
        sandbox: Any = None,
        *,
        overwrite: bool = False,
        progress: bool = True,
    ) -> None:
        self.config = config.validate()
        self._check_inputs(policy_dir, prm_dir)
        _check_engine(accelerator)
        self.accelerator = accelerator
        self._given_sandbox = sandbox
        self.rank = accelerator.process_index if accelerator is not None else 0
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.is_main = self.rank == 0
        self.device = accelerator.device if accelerator is not None else torch.device(config.device)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        callbacks = [on_iteration] if on_iteration is not None else []
        super().__init__(config, out_dir, overwrite=overwrite, progress=progress, callbacks=callbacks)
        if accelerator is not None:
            self._prepare(accelerator)
        self._setup_envs()

    @property
    def iteration(self) -> int:
        """Iterations done (the skeleton's :attr:`step`)."""
        return self.step

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.step = int(value)

    # ------------------------------------------------------------------ setup
    def _check_inputs(self, policy_dir: str | os.PathLike[str], prm_dir: str | os.PathLike[str] | None) -> None:
        """Check the policy and PRM directories (a PRM is needed when the config uses one)."""
        from codegym.lm import check_model_dir

        config = self.config
        self.policy_dir = check_model_dir(policy_dir, "policy")
        if config.uses_prm and prm_dir is None:
            raise ValueError(
                f"dense_reward={config.dense_reward!r} (dense_source={config.dense_source!r}) / "
                f"value_init={config.value_init!r} need a PRM: pass prm_dir (--prm DIR), or use "
                "dense_reward='none' (or dense_source='oracle') and value_init='policy'"
            )
        self.prm_dir = Path(prm_dir) if prm_dir is not None else None
        if self.prm_dir is not None:
            check_model_dir(self.prm_dir, "PRM")

    def settings(self) -> dict[str, Any]:
        """The config, with the policy and PRM (paths and digests) and the world size in
        ``extra``: a rerun with another policy or PRM is refused like other settings."""
        data = self.config.to_dict()
        data["extra"] = {
            **data["extra"],
            "policy_dir": str(self.policy_dir),
            "prm_dir": str(self.prm_dir) if self.prm_dir else None,
            "world_size": self.world,
            "inputs": {"policy": file_digest(self.policy_dir), "prm": file_digest(self.prm_dir) if self.prm_dir else None},
        }
        return data

    def upgrade_record(self, old: dict[str, Any]) -> dict[str, Any]:
        """Records of runs started from Python before input digests were recorded are taken
        to have this run's digests (the command always recorded them)."""
        data = super().upgrade_record(old)
        extra = data.get("extra")
        if isinstance(extra, dict) and "inputs" not in extra:
            data["extra"] = {**extra, "inputs": self.record["extra"]["inputs"]}
        return data

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def setup(self, checkpoint: Path | None) -> None:
        """Models (from the checkpoint when resuming), optimisers, KL controller; the main
        process saves the frozen reference to ``out/reference`` once (a LoRA policy's
        reference is its base: ``reference/reference.json`` says so, no weights)."""
        self.mp = MixedPrecision(self.config.dtype, self.device)
        self._load_models(checkpoint)
        self._make_optimizers()
        ref_dir = self.out / REFERENCE
        if self.is_main and not ((ref_dir / "config.json").is_file() or (ref_dir / REFERENCE_NOTE).is_file()):
            self._save_reference(ref_dir)

    def _save_reference(self, ref_dir: Path) -> None:
        if self.ref is None:
            ref_dir.mkdir(parents=True, exist_ok=True)
            note = {"policy": str(self.policy_dir), "reference": "the policy with its LoRA adapter switched off"}
            (ref_dir / REFERENCE_NOTE).write_text(json.dumps(note, indent=2) + "\n")
            return
        self._unwrap(self.ref).save_pretrained(ref_dir)
        self.tokenizer.save_pretrained(ref_dir)

    def _load_models(self, checkpoint: Path | None) -> None:
        """Policy (and tokenizer), frozen reference and critic: from the checkpoint or the start;
        then precision (trained weights fp32, frozen ones in ``dtype``) and checkpointing."""
        config = self.config
        self._load_policy(checkpoint)
        self._load_reference(checkpoint)
        self._load_critic(checkpoint)
        self.policy.eval()  # dropout off: rollout, old log-probs and updates use one mode
        self.actor = PolicyModel(self.policy) if config.generated_only else None
        for model in (self.policy, self.critic, self.value_head):
            if model is not None:
                self.mp.prepare(model)
        if config.gradient_checkpointing:
            enable_checkpointing(self.policy)
            if self.critic is not None:
                enable_checkpointing(self.critic.prm.backbone)
        #: Generated positions per chunk of the output head (None: whole-vocabulary log-probs).
        self._chunk = config.logprob_chunk or (1 << 30 if config.generated_only else None)

    def _load_policy(self, checkpoint: Path | None) -> None:
        """The trained policy: every weight (fp32 master weights), or a LoRA adapter on the
        base stored in the compute dtype."""
        from codegym.lm import load_causal_lm

        config = self.config
        if config.lora is None:
            start = checkpoint / "policy" if checkpoint is not None else self.policy_dir
            self.policy, self.tokenizer = load_causal_lm(start, device=self.device)
            return
        self.policy, self.tokenizer = load_causal_lm(self.policy_dir, device=self.device, dtype=config.dtype)
        if checkpoint is not None:
            load_adapter(self.policy, checkpoint / "policy")
        else:
            add_lora(self.policy, **config.lora)
        self.policy.to(self.device)

    def _load_reference(self, checkpoint: Path | None) -> None:
        """The frozen reference: None for a LoRA policy (its adapter switched off), else a copy
        (saved in ``out/reference``, stored in the compute dtype)."""
        from codegym.lm import load_causal_lm

        config = self.config
        ref_dir = self.out / REFERENCE
        if config.lora is not None:
            self.ref = None
            return
        if checkpoint is not None or (ref_dir / "config.json").is_file():
            self.ref, _ = load_causal_lm(ref_dir, device=self.device, dtype=config.dtype)
        elif self.mp.enabled:
            self.ref, _ = load_causal_lm(self.policy_dir, device=self.device, dtype=config.dtype)
        else:
            self.ref = copy.deepcopy(self.policy)
        self.ref.requires_grad_(False).eval()

    def _load_critic(self, checkpoint: Path | None) -> None:
        """A separate critic (maybe LoRA), or a value head on the policy's backbone."""
        config = self.config
        self.critic = self.value_head = None
        if config.critic == "shared":
            hidden = int(self.policy.get_output_embeddings().in_features)
            head = load_value_head(checkpoint / "critic") if checkpoint is not None else None
            self.value_head = head or build_value_head(config.value_init, self.prm_dir, hidden)
            self.value_head.to(self.device)
            return
        dtype = config.dtype if config.lora is not None else "fp32"
        if checkpoint is not None:
            self.critic = build_critic("checkpoint", checkpoint / "critic", None, lora=config.lora, dtype=dtype)
        else:
            self.critic = build_critic(config.value_init, self.prm_dir, self.policy_dir, seed=config.seed,
                                       lora=config.lora, dtype=dtype)  # fmt: skip
        self.critic.to(self.device)
        self.critic.eval()

    def _make_optimizers(self) -> None:
        """Separate AdamW optimisers for the policy and the critic (the value head when the
        critic shares the policy's backbone), over their trainable weights; the KL controller."""
        config = self.config
        self.opt_policy = torch.optim.AdamW(
            trainable_parameters(self.policy), lr=config.policy_lr, betas=config.adam_betas,
            eps=config.adam_eps, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.opt_critic = torch.optim.AdamW(
            trainable_parameters(self.critic if self.critic is not None else self.value_head),
            lr=config.critic_lr, betas=config.adam_betas, eps=config.adam_eps, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.kl_ctl = KLController(config.kl_coef, config.adaptive_kl, config.target_kl, config.kl_horizon)

    def _prepare(self, accelerator: Any) -> None:
        """Hand the trained modules and optimisers to the data-parallel engine: the policy (as
        a :class:`PolicyModel` when log-probs come from hidden states, so the output head runs
        inside the engine's forward) and the critic or value head."""
        policy = self.actor if self.actor is not None else self.policy
        critic = self.critic if self.critic is not None else self.value_head
        policy, critic, self.opt_policy, self.opt_critic = accelerator.prepare(
            policy, critic, self.opt_policy, self.opt_critic
        )
        if self.actor is not None:
            self.actor = policy
        else:
            self.policy = policy
        if self.critic is not None:
            self.critic = critic
        else:
            self.value_head = critic

    # ------------------------------------------------------------------ setup
    def _unwrap(self, model: Any) -> Any:
        if self.accelerator is not None:
            return self.accelerator.unwrap_model(model)
        return model

    def _setup_envs(self) -> None:
        """The training suite, the sandbox and the vector env that rolls out one iteration."""
        cfg = self.config
        self.suite = cfg.suite.load()
        self.split = cfg.suite.pick_split(self.suite, "train")
        if self._given_sandbox is not None:
            self.sandbox = self._given_sandbox
        else:
            kwargs = {"pool": cfg.sandbox_pool} if cfg.sandbox_pool else {}
            self.sandbox = make_sandbox(cfg.sandbox, workers=cfg.sandbox_workers, **kwargs)
        first = self.suite.get(self.split, 0)
        self.envs = CodePRMVectorEnv(
            cfg.batch_size, tasks=[first], sandbox=self.sandbox, workers=cfg.sandbox_workers,
            prm=self._line_scorer(), prm_device=str(self.device), reward_mode=cfg.dense_reward,
            test_reward=cfg.unit_test_reward, max_lines=cfg.max_lines, invalid_action="end",
            potential=cfg.potential_scale, autoreset_mode=AutoresetMode.DISABLED,
        )  # fmt: skip

    def _line_scorer(self) -> Any:
        """What gives the dense reward: the PRM directory (one batched scorer in the env), one
        oracle scorer per slot (sharing one verdict cache), or ``None`` without dense reward."""
        cfg = self.config
        if cfg.dense_reward == "none":
            return None
        if cfg.dense_source == "oracle":
            cache = VerdictCache()
            return [ReferenceCompletionScorer(self.sandbox, cache=cache) for _ in range(cfg.batch_size)]
        if self._critic_holds_prm() or self.mp.enabled:
            from codegym.prm import BatchedPRMScorer, ProcessRewardModel

            if self._critic_holds_prm():  # the critic's backbone is the PRM's: no second copy
                from codegym.prm.model import read_prm_head

                weight, bias, _ = read_prm_head(self.prm_dir)
                prm = self._unwrap(self.critic).prm.adapters_off(head=(weight, bias))
            else:  # a frozen PRM stored in the compute dtype
                prm = ProcessRewardModel.from_pretrained(self.prm_dir, device=self.device, dtype=cfg.dtype)
            return BatchedPRMScorer(prm, cfg.batch_size)
        return str(self.prm_dir)

    def _critic_holds_prm(self) -> bool:
        """The critic is a LoRA adapter on the PRM's frozen backbone (``value_init="prm"``):
        with the adapter switched off and the PRM's head it is the env's PRM."""
        cfg = self.config
        return self.critic is not None and cfg.lora is not None and cfg.value_init == "prm"

    def close(self) -> None:
        """Close the vector env, the sandbox and the metrics."""
        super().close()
        if hasattr(self, "envs"):
            self.envs.close()
        if hasattr(self, "sandbox") and self._given_sandbox is None:
            self.sandbox.close()

    # ---------------------------------------------------------------- rollout
    def _draw_tasks(self, iteration: int) -> list[Any]:
        """The iteration's tasks: ``num_prompts`` distinct draws, each repeated per sample."""
        cfg = self.config
        rng = stream_rng(cfg.seed, iteration, self.rank, "tasks")
        if cfg.task_pool:
            idx = rng.choice(cfg.task_pool, size=cfg.num_prompts, replace=cfg.num_prompts > cfg.task_pool)
            tasks = [self.suite.get(self.split, int(i)) for i in idx]
        else:
            tasks = [self.suite.sample(rng, self.split) for _ in range(cfg.num_prompts)]
        return [t for t in tasks for _ in range(cfg.samples_per_prompt)]

    @torch.no_grad()
    def rollout(self, iteration: int) -> list[Episode]:
        """Sample the iteration's programs through the vector env: the policy draws tokens until
        each line ends (its own ids kept, ``reencode=False``), every line is one env step."""
        cfg = self.config
        gen = stream_generator(cfg.seed, iteration, self.rank, "sampling", self.device)
        sampler = LineSampler(
            self._unwrap(self.policy), self.tokenizer, temperature=cfg.temperature,
            max_line_tokens=cfg.max_line_tokens, generator=gen, reencode=False,
        )  # fmt: skip
        agent = SamplerAgent(sampler, max_new_tokens=cfg.max_new_tokens, sanitize=False, chat_template=cfg.chat_template)
        episodes: list[Episode] = []
        with self.mp.autocast():
            run_episodes(agent, self._draw_tasks(iteration), envs=self.envs,
                         on_wave=lambda wave: episodes.extend(episodes_from_records(wave, agent, cfg.dense_coef)))  # fmt: skip
        return episodes

    # ------------------------------------------------------------- advantages
    @torch.no_grad()
    def compute_advantages(self, batch: PPOBatch) -> PPOBatch:
        """The no-grad pass: old and reference log-probs, the per-token KL, values, token
        rewards (line rewards on line ends, the final reward on the last token, −β·KL on every
        drawn token) and GAE over tokens; returns the batch with them attached."""
        cfg = self.config
        split = self._split(batch)
        with self.mp.autocast():
            policy = self._policy_forward(batch, split, grad=False)
            ref = self._reference_forward(batch, split)
            if self.critic is not None:
                values = forward(self._unwrap(self.critic), batch, split=split).values  # (B, S-1)
            else:
                values = policy.values  # (B, S-1), the value head on the policy's hidden states
        # KL only where the policy drew the token (a re-encoded token's log-ratio is no estimate)
        kl = torch.where(batch.policy_mask, policy.logprobs - ref.logprobs, torch.zeros_like(policy.logprobs))
        rewards = place_rewards(
            batch.action_mask, batch.line_end, batch.line_rewards, batch.final_reward, kl, self.kl_ctl.value
        )  # (B, S-1)
        gae = compute_gae(rewards, self._bounded(values, batch), batch.action_mask, cfg.gamma, cfg.gae_lambda)
        return batch.with_scores(
            old_logprobs=policy.logprobs, ref_logprobs=ref.logprobs, entropy=policy.entropy, values=values,
            kl=kl, rewards=rewards, advantages=gae.advantages, returns=gae.returns,
        )  # fmt: skip

    def _bounded(self, values: torch.Tensor, batch: PPOBatch) -> torch.Tensor:
        """``values`` (B, S-1) clamped to the shaped return's range (``value_bounds`` with closed
        shaping, see :class:`PPOConfig`), else as they are."""
        cfg = self.config
        if not (cfg.value_bounds and cfg.dense_reward == "delta"):
            return values
        potential = token_potentials(batch.action_mask, batch.line_end, batch.line_rewards, batch.final_dense)
        return bound_values(values, potential, 0.0, 1.0)  # binary and fraction rewards lie in [0, 1]

    def _policy_forward(self, batch: PPOBatch, split: SplitBatch | None, grad: bool, **options: Any) -> Any:
        """:func:`forward` of the policy (with the shared value head's values, if any):
        through the data-parallel wrapper when ``grad``, else the unwrapped module."""
        model = self.actor if self.actor is not None else self.policy
        head = self.value_head if grad else self._unwrap(self.value_head) if self.value_head is not None else None
        return forward(model if grad else self._unwrap(model), batch, temperature=self.config.temperature,
                       split=split, chunk_tokens=self._chunk, value_head=head, **options)  # fmt: skip

    def _reference_forward(self, batch: PPOBatch, split: SplitBatch | None) -> Any:
        """:func:`forward` of the frozen reference: its own model, or the LoRA policy with the
        adapter switched off."""
        options = {"temperature": self.config.temperature, "entropy": False, "split": split, "chunk_tokens": self._chunk}
        if self.ref is not None:
            return forward(self.ref, batch, **options)
        model = self._unwrap(self.actor if self.actor is not None else self.policy)
        with adapters_disabled(self._unwrap(self.policy)):
            return forward(model, batch, **options)

    def _split(self, batch: PPOBatch) -> SplitBatch | None:
        """The batch split by prompt group (``shared_prompt`` on, single process), else None."""
        if not self._split_active():
            return None
        pad = self.tokenizer.pad_token_id
        return split_batch(batch, int(pad if pad is not None else self.tokenizer.eos_token_id))

    def _split_active(self) -> bool:
        return self.config.shared_prompt and self.world == 1

    # ----------------------------------------------------------------- update
    def update(self, batch: PPOBatch, iteration: int, train_policy: bool) -> dict[str, float]:
        """Minibatch epochs of clipped policy and value losses; returns mean diagnostics."""
        cfg = self.config
        gen = stream_generator(cfg.seed, iteration, self.rank, "minibatches")
        logs: dict[str, list[float]] = {
            k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac", "grad_norm", "value_grad_norm")
        }
        self.policy.train(False)
        for _ in range(cfg.update_epochs):
            for mb in batch.minibatches(cfg.num_minibatches, gen, by_group=self._split_active()):
                # checkpointed layers drop the KV cache a shared prompt is continued from
                split = None if cfg.gradient_checkpointing else self._split(mb)
                if self.value_head is not None:
                    self._shared_step(mb, split, logs, train_policy)
                    continue
                if train_policy:
                    self._policy_step(mb, split, logs)
                self._critic_step(mb, split, logs)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in logs.items()}

    def _policy_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]]) -> None:
        """One clipped-surrogate step of the policy on minibatch ``mb``."""
        cfg = self.config
        with self.mp.autocast():
            new = self._policy_forward(mb, split, grad=True)
            pl, ent_mean = self._policy_loss(mb, new)
        self.opt_policy.zero_grad(set_to_none=True)
        self._backward(pl.loss - cfg.ent_coef * ent_mean)
        logs["grad_norm"].append(self._steps((self.opt_policy, self.policy))[0])
        self._log_policy(logs, pl, ent_mean)

    def _policy_loss(self, mb: PPOBatch, new: Any) -> tuple[Any, torch.Tensor]:
        """The clipped surrogate on whitened advantages and the mean entropy, over the tokens
        the policy drew as they stand (see agents.ppo.batch)."""
        cfg = self.config
        adv = masked_whiten(mb.advantages, mb.action_mask) if cfg.norm_adv else mb.advantages
        pmask = mb.policy_mask
        pl = clipped_policy_loss(new.logprobs, mb.old_logprobs, adv, pmask, cfg.clip_coef)
        return pl, masked_mean(new.entropy, pmask)

    @staticmethod
    def _log_policy(logs: dict[str, list[float]], pl: Any, ent_mean: torch.Tensor) -> None:
        logs["policy"].append(pl.loss.item())
        logs["entropy"].append(ent_mean.item())
        logs["approx_kl"].append(pl.approx_kl.item())
        logs["clipfrac"].append(pl.clipfrac.item())

    def _value_loss(self, mb: PPOBatch, new_v: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return clipped_value_loss(new_v, mb.values, mb.returns, mb.action_mask, cfg.vf_clip_coef if cfg.clip_vloss else None)

    def _critic_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]]) -> None:
        """One clipped value-loss step of the critic on minibatch ``mb``."""
        with self.mp.autocast():
            vloss = self._value_loss(mb, forward(self.critic, mb, split=split).values)
        self.opt_critic.zero_grad(set_to_none=True)
        self._backward(self.config.vf_coef * vloss)
        logs["value_grad_norm"].append(self._steps((self.opt_critic, self.critic))[0])
        logs["value"].append(vloss.item())

    def _shared_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]], train_policy: bool) -> None:
        """One step of a critic that shares the policy's backbone: one forward gives log-probs
        and values; the policy loss + ``vf_coef`` × value loss trains the backbone and the
        head together. In the warm-up (``train_policy`` False) the backbone runs without
        autograd and only the head trains (the policy stays as it started)."""
        cfg = self.config
        with self.mp.autocast():
            new = self._policy_forward(mb, split, grad=True, logprobs=train_policy, train_backbone=train_policy)
            vloss = self._value_loss(mb, new.values)
            loss = cfg.vf_coef * vloss
            if train_policy:
                pl, ent_mean = self._policy_loss(mb, new)
                loss = loss + pl.loss - cfg.ent_coef * ent_mean
        self.opt_policy.zero_grad(set_to_none=True)
        self.opt_critic.zero_grad(set_to_none=True)
        self._backward(loss)
        if train_policy:
            norms = self._steps((self.opt_policy, self.policy), (self.opt_critic, self.value_head))
            logs["grad_norm"].append(norms[0])
            self._log_policy(logs, pl, ent_mean)
        else:
            norms = [float("nan"), *self._steps((self.opt_critic, self.value_head))]
        logs["value_grad_norm"].append(norms[-1])
        logs["value"].append(vloss.item())

    def _backward(self, loss: torch.Tensor) -> None:
        loss = self.mp.scaler.scale(loss)  # fp16 loss scaling (identity otherwise)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def _steps(self, *pairs: tuple[Any, Any]) -> list[float]:
        """For each ``(optimizer, model)`` after one backward pass: unscale (fp16), clip the
        model's gradients, step; then update the loss scale. Returns the gradient norms."""
        norms = []
        for opt, model in pairs:
            self.mp.scaler.unscale_(opt)
            norms.append(self._clip(model))
            self.mp.scaler.step(opt)
        self.mp.scaler.update()
        return norms

    def _clip(self, model: Any) -> float:
        params = [p for p in model.parameters() if p.grad is not None]
        if self.accelerator is not None:
            norm = self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        return float(norm)

    # ------------------------------------------------------------------ train
    def train_iteration(self) -> dict[str, Any]:
        """One iteration, in CleanRL's order.

        Returns:
            The metrics row (:meth:`learn` writes it to ``metrics.jsonl`` every ``log_every``
            iterations and checkpoints every ``checkpoint_every``).
        """
        cfg = self.config
        iteration = self.iteration + 1
        timing: dict[str, float] = {}
        # 1. rollout: num_prompts x samples_per_prompt programs, line by line through the env
        start = time.perf_counter()
        episodes = self.rollout(iteration)
        timing["rollout"] = time.perf_counter() - start
        # 2. rewards: the env's line and final rewards on a typed token batch
        start = time.perf_counter()
        batch = PPOBatch.from_episodes(episodes, self.tokenizer).to(self.device)
        # 3. advantages: old/reference log-probs, values, token rewards with the KL penalty, GAE
        batch = self.compute_advantages(batch)
        timing["score"] = time.perf_counter() - start
        # 4. minibatch epochs (the policy only after the critic warm-up)
        start = time.perf_counter()
        train_policy = iteration > cfg.critic_warmup_iterations
        losses = self.update(batch, iteration, train_policy)
        timing["update"] = time.perf_counter() - start
        # 5. log: losses/*, charts/*, time/*; checkpoint
        self.iteration = iteration
        beta = self.kl_ctl.value
        stats = self._episode_stats(episodes, batch)
        self.kl_ctl.update(stats["kl"], len(episodes) * self.world)
        row = self._metrics_row(batch, losses, stats, timing, beta=beta, train_policy=train_policy)
        row.update(shaping_diagnostics(episodes, batch, cfg.max_lines))  # diag/*: advantages, values, endings
        if self.is_main:
            self._log_samples(iteration, episodes[:: cfg.samples_per_prompt])
        return row

    def _log_samples(self, iteration: int, episodes: list[Episode]) -> None:
        """Append one program per task of the iteration to ``OUT/samples.jsonl`` (to read what
        the policy writes when a diagnostic moves)."""
        with open(self.out / "samples.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"iteration": iteration, "programs": sample_programs(episodes)}) + "\n")

    def train_step(self) -> dict[str, Any]:
        """The skeleton's step: one PPO iteration."""
        return self.train_iteration()

    def progress_info(self, row: dict[str, Any]) -> str:
        return f"pass {row['charts/pass_rate']:.2f} kl {row['charts/kl']:.3f}"

    def _episode_stats(self, episodes: list[Episode], batch: PPOBatch) -> dict[str, float]:
        """Rollout statistics averaged across processes (``charts/*`` of the metrics row)."""
        mask = batch.action_mask
        n_tokens = batch.num_action_tokens
        stats = {
            "pass_rate": float(np.mean([e.passed for e in episodes])),
            "return": float((batch.rewards * mask).sum(dim=1).mean()),
            "test_reward": float(np.mean([e.test_reward for e in episodes])),
            "dense_reward": float(np.mean([sum(e.line_rewards) for e in episodes])),
            "kl": float((batch.kl * mask).sum(dim=1).mean()),
            "entropy": float(masked_mean(batch.entropy, mask)),
            "lines": float(np.mean([e.num_lines for e in episodes])),
            "tokens": n_tokens / len(episodes),
            "prefix_accuracy": float(np.mean([e.prefix_accuracy for e in episodes])),
            "invalid_rate": float(np.mean([e.invalid for e in episodes])),
            "truncated_rate": float(np.mean([e.truncated for e in episodes])),
            # action tokens the policy did not draw (forced newlines; left out of the policy loss)
            "undrawn_rate": 1.0 - float(batch.policy_mask.sum()) / max(n_tokens, 1),
        }
        stats = {k: self._mean_across(v) for k, v in stats.items()}
        if self.world > 1:  # DDP keeps replicas identical: the spread of a checksum must be 0
            checksum = sum(float(p.detach().double().sum()) for p in self.policy.parameters())
            gathered = self.accelerator.gather(torch.tensor([checksum], dtype=torch.float64, device=self.device))
            stats["ddp_param_spread"] = float(gathered.max() - gathered.min())
            stats["world_size"] = float(self.world)
        return stats

    def _metrics_row(
        self,
        batch: PPOBatch,
        losses: dict[str, float],
        stats: dict[str, float],
        timing: dict[str, float],
        *,
        beta: float,
        train_policy: bool,
    ) -> dict[str, Any]:
        """The iteration's metrics row: ``losses/*``, ``charts/*`` and ``time/*``."""
        n_tokens = batch.num_action_tokens
        row: dict[str, Any] = {"iteration": self.iteration, "time": time.time()}
        row.update({f"losses/{k}": v for k, v in losses.items() if k not in ("grad_norm", "value_grad_norm")})
        row.update({f"charts/{k}": v for k, v in stats.items()})
        row.update(
            {
                "charts/kl_coef": beta,
                "charts/explained_variance": explained_variance(batch.values, batch.returns, batch.action_mask),
                "charts/grad_norm": losses["grad_norm"],
                "charts/value_grad_norm": losses["value_grad_norm"],
                "charts/policy_trained": train_policy,
                "charts/rollout_tokens_per_s": n_tokens / max(timing["rollout"], 1e-9),
                "charts/update_tokens_per_s": n_tokens * self.config.update_epochs / max(timing["update"], 1e-9),
                "charts/score_tokens_per_s": int(batch.attention_mask.sum()) / max(timing["score"], 1e-9),
            }
        )
        row.update({f"time/{k}": v for k, v in timing.items()})
        return row

    def train(self, iterations: int | None = None, callbacks: Sequence[Callback] = ()) -> list[dict[str, Any]]:
        """Train until ``iterations`` (default ``config.iterations``) are done; save final
        models and the model card (:meth:`learn`).

        Returns the metrics rows produced by this call (resumed runs skip done iterations).
        """
        return self.learn(iterations, callbacks)

    def _mean_across(self, value: float) -> float:
        if self.accelerator is None or self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float32, device=self.device)
        return float(self.accelerator.reduce(t, reduction="mean"))

    # ------------------------------------------------------------ checkpoints
    def save_state(self, path: Path) -> None:
        """Policy, critic, optimisers, iteration and β into checkpoint ``path``."""
        self._save_models(path)
        state = {
            "iteration": self.iteration,
            "kl_coef": self.kl_ctl.value,
            "opt_policy": self.opt_policy.state_dict(),
            "opt_critic": self.opt_critic.state_dict(),
        }
        torch.save(state, path / STATE)

    def load_state(self, path: Path) -> None:
        state = torch.load(path / STATE, map_location=self.device, weights_only=False)
        self.iteration = int(state["iteration"])
        self.kl_ctl.value = float(state["kl_coef"])
        self.opt_policy.load_state_dict(state["opt_policy"])
        self.opt_critic.load_state_dict(state["opt_critic"])

    def save_final(self) -> None:
        """Write ``out/policy`` (loadable by ``codegym eval --agent ppo --model OUT``) and
        ``out/critic``."""
        self.barrier()
        if not self.is_main:
            return
        self._save_models(self.out)

    def _save_models(self, path: Path) -> None:
        """``path/policy`` (a causal LM, or a LoRA adapter naming the start policy as its base)
        and ``path/critic`` (loadable as a PRM; a shared critic's head names ``../policy`` as its
        backbone)."""
        policy = self._unwrap(self.policy)
        if self.config.lora is not None:
            save_adapter(policy, path / "policy", self.policy_dir)
        else:
            policy.save_pretrained(path / "policy")
        self.tokenizer.save_pretrained(path / "policy")
        if self.critic is not None:
            save_critic(self._unwrap(self.critic), path / "critic", self.tokenizer)
        else:
            save_value_head(self._unwrap(self.value_head), path / "critic", self.tokenizer, backbone="../policy")

    def card(self) -> dict[str, Any]:
        return ppo_card(self.out, self.config, self.policy_dir, self.prm_dir)

    def write_card(self) -> Path | None:
        """The card (``out/README.md``), copied to ``out/policy/README.md``."""
        path = super().write_card()
        if path is not None:
            copy_card_to_policy(path)
        return path
