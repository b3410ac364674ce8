"""Critic-free RL with group-relative advantages: GRPO, its Dr. GRPO and RLOO variants, and
process supervision from a PRM or from an exact oracle.

Reads like :mod:`agents.ppo.trainer` without the critic; :meth:`GRPOTrainer.train_iteration`
is five numbered phases:

1. **rollout** — ``num_prompts`` training tasks × ``samples_per_prompt`` programs (one group per
   task) sampled line by line through one :class:`codegym.envs.vector.CodePRMVectorEnv` step
   loop (:func:`codegym.rollout.run_episodes`), the policy's own token ids kept;
2. **rewards** — the episodes become a :class:`agents.ppo.batch.PPOBatch` (each line's
   ``info["line_rewards"]`` entry, PPO's line-end rule) plus each program's unit-test reward
   and which lines were scored (:class:`GroupRewards`); the env names every term;
3. **advantages** — one no-grad :func:`agents.ppo.batch.forward` of the policy and the frozen
   reference gives old log-probs and the per-token KL; the advantages are group-relative
   (:func:`agents.grpo.advantages.token_advantages`: outcome, process, or both), no critic;
4. **minibatch epochs** — ``update_epochs`` passes of PPO's clipped surrogate
   (:func:`agents.ppo.losses.clipped_policy_loss`) with, in GRPO's placement, β × the k3 KL
   estimator in the loss (or PPO's placement, −β·KL in the reward);
5. **logging** — a JSONL row of ``losses/*`` and ``charts/*`` (the hacking diagnostics of PPO:
   invalid lines, lines and tokens per program, KL, pass rate, prefix accuracy) and a
   resumable checkpoint; the final policy gets a model card. Run directory, resume,
   checkpoints, metrics, progress and card are the shared skeleton's
   (:class:`codegym.training.trainer.Trainer`).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from agents.grpo.advantages import kl_to_go, token_advantages
from agents.grpo.config import GRPOConfig
from agents.grpo.losses import k3_kl, loss_weights
from agents.grpo.modelcard import grpo_card
from agents.ppo.batch import Episode, PPOBatch, episodes_from_records, forward, split_batch
from agents.ppo.gae import masked_mean, masked_whiten, place_rewards
from agents.ppo.losses import clipped_policy_loss
from agents.ppo.modelcard import copy_card_to_policy
from agents.ppo.shared_prompt import SplitBatch
from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.envs.vector import CodePRMVectorEnv
from codegym.rollout import SamplerAgent, run_episodes
from codegym.sampling import LineSampler
from codegym.training.rundir import file_digest
from codegym.training.seeding import stream_generator, stream_rng
from codegym.training.trainer import Callback, Trainer
from sandboxes import make_sandbox

STATE = "state.pt"
REFERENCE = "reference"
METRICS = "metrics.jsonl"


class GroupRewards(NamedTuple):
    """What the advantages read besides the :class:`PPOBatch`: per program and per line."""

    outcome: torch.Tensor  # (B,) unit-test reward of each program, as the env paid it
    line_mask: torch.Tensor  # (B, L) bool, lines the scorer scored (not neutral, not invalid)

    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode], batch: PPOBatch) -> GroupRewards:
        """Rewards of ``episodes`` aligned with ``batch`` (same rows, its ``L`` lines)."""
        lines = batch.line_end.shape[1]
        mask = torch.zeros(len(episodes), lines, dtype=torch.bool)
        for b, ep in enumerate(episodes):
            scored = [s is not None for s in ep.prm_scores[:lines]]
            mask[b, : len(scored)] = torch.tensor(scored, dtype=torch.bool)
        outcome = torch.tensor([ep.test_reward for ep in episodes], dtype=torch.float32)
        device = batch.input_ids.device
        return cls(outcome.to(device), (mask & (batch.line_end.cpu() >= 0)).to(device))


class GRPOTrainer(Trainer):
    """Trains a causal-LM policy in ``CodePRM-v0`` with group-relative advantages (no critic).

    Args:
        config: The :class:`GRPOConfig`.
        policy_dir: ``save_pretrained`` directory of the starting policy (and its tokenizer).
        out_dir: Run directory: ``config.json``, ``metrics.jsonl``, ``reference/``,
            ``checkpoint/`` (resumable), ``policy/`` (final) and ``README.md`` (model card).
        prm_dir: PRM checkpoint (needed for process advantages from the PRM).
        accelerator: Must be ``None``: GRPO trains in one process.
        on_iteration: Called with each metrics row, or None.
        sandbox: A shared :class:`sandboxes.Sandbox` (not closed here), or None to build
            ``config.sandbox`` with ``config.sandbox_workers`` workers.
        overwrite: Delete a previous run in ``out_dir`` and start over.
        progress: Show a progress bar while training.

    Restarting with the same ``out_dir`` and settings (policy and PRM included) resumes from
    the last checkpoint; other settings are refused (:class:`codegym.training.trainer.Trainer`).
    """

    config_class = GRPOConfig
    step_name = "iteration"
    total_field = "iterations"
    record_name = "config.json"
    metrics_name = METRICS
    state_name = STATE
    markers = (REFERENCE,)
    #: Config fields that may change when a run is resumed (everything else must match).
    resumable = ("iterations", "device", "torch_threads", "log_every", "checkpoint_every")
    smoke_caps = {"iterations": 2, "num_prompts": 2, "samples_per_prompt": 2, "num_minibatches": 1,
                  "max_new_tokens": 48, "max_lines": 8}  # fmt: skip

    def __init__(
        self,
        config: GRPOConfig,
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
        if accelerator is not None:
            raise ValueError("GRPO trains in one process: start it without accelerate launch / torchrun "
                             "(--agent ppo trains data-parallel)")  # fmt: skip
        self.config = config.validate()
        self._check_inputs(policy_dir, prm_dir)
        self._given_sandbox = sandbox
        self.device = torch.device(config.device)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        callbacks = [on_iteration] if on_iteration is not None else []
        super().__init__(config, out_dir, overwrite=overwrite, progress=progress, callbacks=callbacks)
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
        """Check the policy and PRM directories (a PRM is needed for PRM process advantages)."""
        from codegym.lm import check_model_dir

        config = self.config
        self.policy_dir = check_model_dir(policy_dir, "policy")
        if config.uses_prm and prm_dir is None:
            raise ValueError(
                f"advantage={config.advantage!r} with process_source='prm' needs a PRM: pass prm_dir "
                "(--prm DIR), or use process_source='oracle' or advantage='outcome'"
            )
        self.prm_dir = Path(prm_dir) if prm_dir is not None and config.uses_prm else None
        if self.prm_dir is not None:
            check_model_dir(self.prm_dir, "PRM")

    def settings(self) -> dict[str, Any]:
        """The config, with the policy and PRM (paths and digests) in ``extra``."""
        data = self.config.to_dict()
        data["extra"] = {
            **data["extra"],
            "policy_dir": str(self.policy_dir),
            "prm_dir": str(self.prm_dir) if self.prm_dir else None,
            "inputs": {"policy": file_digest(self.policy_dir), "prm": file_digest(self.prm_dir) if self.prm_dir else None},
        }
        return data

    def setup(self, checkpoint: Path | None) -> None:
        """Policy (from the checkpoint when resuming), frozen reference, optimiser; the
        reference is saved to ``out/reference`` once."""
        from codegym.lm import load_causal_lm

        self.policy, self.tokenizer = load_causal_lm(
            checkpoint / "policy" if checkpoint is not None else self.policy_dir, device=self.device
        )
        ref_dir = self.out / REFERENCE
        if (ref_dir / "config.json").is_file():
            self.ref, _ = load_causal_lm(ref_dir, device=self.device)
        else:
            self.ref = copy.deepcopy(self.policy)
            self.ref.save_pretrained(ref_dir)
            self.tokenizer.save_pretrained(ref_dir)
        self.ref.requires_grad_(False).eval()
        self.policy.eval()  # dropout off: rollout, old log-probs and updates use one mode
        cfg = self.config
        self.opt_policy = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.policy_lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
        )  # fmt: skip

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
        self.envs = CodePRMVectorEnv(
            cfg.batch_size, tasks=[self.suite.get(self.split, 0)], sandbox=self.sandbox,
            workers=cfg.sandbox_workers, prm=self._line_scorer(), prm_device=str(self.device),
            reward_mode=cfg.env_reward_mode, test_reward=cfg.unit_test_reward, max_lines=cfg.max_lines,
            invalid_action="end", potential=cfg.potential_scale, autoreset_mode=AutoresetMode.DISABLED,
        )  # fmt: skip

    def _line_scorer(self) -> Any:
        """What scores lines: the PRM directory, one oracle scorer per slot (one shared verdict
        cache), or ``None`` for outcome advantages."""
        cfg = self.config
        if not cfg.uses_process:
            return None
        if cfg.process_source == "oracle":
            cache = VerdictCache()
            return [ReferenceCompletionScorer(self.sandbox, cache=cache) for _ in range(cfg.batch_size)]
        return str(self.prm_dir)

    def close(self) -> None:
        """Close the vector env, the sandbox and the metrics."""
        super().close()
        if hasattr(self, "envs"):
            self.envs.close()
        if hasattr(self, "sandbox") and self._given_sandbox is None:
            self.sandbox.close()

    # ---------------------------------------------------------------- rollout
    def _draw_tasks(self, iteration: int) -> list[Any]:
        """The iteration's tasks: ``num_prompts`` draws, each repeated ``samples_per_prompt``
        times (one group each; the same draws as a PPO run with the same seed)."""
        cfg = self.config
        rng = stream_rng(cfg.seed, iteration, 0, "tasks")
        if cfg.task_pool:
            idx = rng.choice(cfg.task_pool, size=cfg.num_prompts, replace=cfg.num_prompts > cfg.task_pool)
            tasks = [self.suite.get(self.split, int(i)) for i in idx]
        else:
            tasks = [self.suite.sample(rng, self.split) for _ in range(cfg.num_prompts)]
        return [t for t in tasks for _ in range(cfg.samples_per_prompt)]

    @torch.no_grad()
    def rollout(self, iteration: int) -> list[Episode]:
        """Sample the iteration's programs through the vector env (the policy's own ids kept)."""
        cfg = self.config
        gen = stream_generator(cfg.seed, iteration, 0, "sampling", self.device)
        sampler = LineSampler(self.policy, self.tokenizer, temperature=cfg.temperature,
                              max_line_tokens=cfg.max_line_tokens, generator=gen, reencode=False)  # fmt: skip
        agent = SamplerAgent(sampler, max_new_tokens=cfg.max_new_tokens, sanitize=False)
        episodes: list[Episode] = []
        run_episodes(agent, self._draw_tasks(iteration), envs=self.envs,
                     on_wave=lambda wave: episodes.extend(episodes_from_records(wave, agent)))  # fmt: skip
        return episodes

    # ------------------------------------------------------------- advantages
    @torch.no_grad()
    def compute_advantages(self, batch: PPOBatch, rewards: GroupRewards) -> PPOBatch:
        """The no-grad pass: old and reference log-probs, the per-token KL, token rewards (for
        the logs) and the group-relative advantages; returns the batch with them attached."""
        cfg = self.config
        split = self._split(batch)
        policy = forward(self.policy, batch, temperature=cfg.temperature, split=split)
        ref = forward(self.ref, batch, temperature=cfg.temperature, entropy=False, split=split)
        # KL only where the policy drew the token (a re-encoded token's log-ratio is no estimate)
        kl = torch.where(batch.policy_mask, policy.logprobs - ref.logprobs, torch.zeros_like(policy.logprobs))
        adv = token_advantages(
            cfg.advantage, rewards.outcome, batch.line_rewards, rewards.line_mask, batch.line_end, batch.group,
            batch.action_mask, baseline=cfg.baseline, scale_by_std=cfg.scale_by_std,
            process_coef=cfg.process_coef, eps=cfg.adv_eps,
        )  # fmt: skip
        in_reward = cfg.kl_penalty == "reward"
        advantages = adv.tokens - cfg.kl_coef * kl_to_go(kl, batch.action_mask) if in_reward else adv.tokens
        line_rewards = torch.where(rewards.line_mask, batch.line_rewards, torch.zeros_like(batch.line_rewards))
        token_rewards = place_rewards(batch.action_mask, batch.line_end, line_rewards, rewards.outcome,
                                      kl if in_reward else None, cfg.kl_coef)  # fmt: skip
        return batch.with_scores(old_logprobs=policy.logprobs, ref_logprobs=ref.logprobs, entropy=policy.entropy,
                                 kl=kl, rewards=token_rewards, advantages=advantages)  # fmt: skip

    def _split(self, batch: PPOBatch) -> SplitBatch | None:
        """The batch split by prompt group (``shared_prompt`` on), else None."""
        if not self.config.shared_prompt:
            return None
        pad = self.tokenizer.pad_token_id
        return split_batch(batch, int(pad if pad is not None else self.tokenizer.eos_token_id))

    # ----------------------------------------------------------------- update
    def update(self, batch: PPOBatch, iteration: int) -> dict[str, float]:
        """Minibatch epochs of the clipped surrogate (+ β·KL in the loss); mean diagnostics."""
        cfg = self.config
        gen = stream_generator(cfg.seed, iteration, 0, "minibatches")
        logs: dict[str, list[float]] = {k: [] for k in ("policy", "kl", "entropy", "approx_kl", "clipfrac", "grad_norm")}
        for _ in range(cfg.update_epochs):
            for mb in batch.minibatches(cfg.num_minibatches, gen, by_group=cfg.shared_prompt):
                self._policy_step(mb, self._split(mb), logs)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in logs.items()}

    def _policy_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]]) -> None:
        """One step of the clipped surrogate (and the KL term) on minibatch ``mb``."""
        cfg = self.config
        adv = masked_whiten(mb.advantages, mb.action_mask) if cfg.norm_adv else mb.advantages
        new = forward(self.policy, mb, temperature=cfg.temperature, split=split)
        pmask = mb.policy_mask  # tokens drawn as they stand (see agents.ppo.batch)
        agg = loss_weights(pmask, cfg.loss_aggregation, cfg.max_new_tokens)
        pl = clipped_policy_loss(new.logprobs, mb.old_logprobs, adv, agg.weights, cfg.clip_coef)
        kl = masked_mean(k3_kl(new.logprobs, mb.ref_logprobs), agg.weights)
        ent_mean = masked_mean(new.entropy, pmask)
        loss = agg.scale * (pl.loss + (cfg.kl_coef * kl if cfg.kl_penalty == "loss" else 0.0))
        self.opt_policy.zero_grad(set_to_none=True)
        (loss - cfg.ent_coef * ent_mean).backward()
        params = [p for p in self.policy.parameters() if p.grad is not None]
        logs["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
        self.opt_policy.step()
        logs["policy"].append(pl.loss.item())
        logs["kl"].append(kl.item())
        logs["entropy"].append(ent_mean.item())
        logs["approx_kl"].append(pl.approx_kl.item())
        logs["clipfrac"].append(pl.clipfrac.item())

    # ------------------------------------------------------------------ train
    def train_iteration(self) -> dict[str, Any]:
        """One iteration: rollout, rewards, advantages, minibatch epochs, log.

        Returns:
            The metrics row (:meth:`learn` writes it and checkpoints when due).
        """
        iteration = self.iteration + 1
        timing: dict[str, float] = {}
        # 1. rollout: num_prompts groups of samples_per_prompt programs, line by line through the env
        start = time.perf_counter()
        episodes = self.rollout(iteration)
        timing["rollout"] = time.perf_counter() - start
        # 2. rewards: the env's line rewards on a typed token batch, each program's unit-test reward
        start = time.perf_counter()
        batch = PPOBatch.from_episodes(episodes, self.tokenizer).to(self.device)
        rewards = GroupRewards.from_episodes(episodes, batch)
        # 3. advantages: old/reference log-probs, per-token KL, group-relative advantages
        batch = self.compute_advantages(batch, rewards)
        timing["score"] = time.perf_counter() - start
        # 4. minibatch epochs of the clipped surrogate (+ β·KL)
        start = time.perf_counter()
        losses = self.update(batch, iteration)
        timing["update"] = time.perf_counter() - start
        # 5. log: losses/*, charts/*, time/*; checkpoint (by the skeleton)
        self.iteration = iteration
        return self._metrics_row(batch, losses, self._episode_stats(episodes, batch, rewards), timing)

    def train_step(self) -> dict[str, Any]:
        """The skeleton's step: one GRPO iteration."""
        return self.train_iteration()

    def train(self, iterations: int | None = None, callbacks: Sequence[Callback] = ()) -> list[dict[str, Any]]:
        """Train until ``iterations`` (default ``config.iterations``) are done (:meth:`learn`)."""
        return self.learn(iterations, callbacks)

    def progress_info(self, row: dict[str, Any]) -> str:
        return f"pass {row['charts/pass_rate']:.2f} kl {row['charts/kl']:.3f}"

    def _episode_stats(self, episodes: list[Episode], batch: PPOBatch, rewards: GroupRewards) -> dict[str, float]:
        """Rollout statistics (``charts/*``): outcomes, hacking symptoms, advantage signal."""
        mask = batch.action_mask
        n_tokens = batch.num_action_tokens
        groups = batch.group.cpu()
        outcome = rewards.outcome.cpu()
        flat = [bool((outcome[groups == g] == outcome[groups == g][0]).all()) for g in torch.unique(groups)]
        return {
            "pass_rate": float(np.mean([e.passed for e in episodes])),
            "return": float((batch.rewards * mask).sum(dim=1).mean()),
            "test_reward": float(np.mean([e.test_reward for e in episodes])),
            "dense_reward": float((batch.line_rewards * rewards.line_mask).sum(dim=1).mean()),
            "kl": float((batch.kl * mask).sum(dim=1).mean()),
            "entropy": float(masked_mean(batch.entropy, mask)),
            "lines": float(np.mean([e.num_lines for e in episodes])),
            "tokens": n_tokens / len(episodes),
            "prefix_accuracy": float(np.mean([e.prefix_accuracy for e in episodes])),
            "invalid_rate": float(np.mean([e.invalid for e in episodes])),
            "truncated_rate": float(np.mean([e.truncated for e in episodes])),
            "undrawn_rate": 1.0 - float(batch.policy_mask.sum()) / max(n_tokens, 1),
            # groups whose programs all got the same unit-test reward: no outcome signal there
            "flat_groups": float(np.mean(flat)),
            "advantage_abs": float(masked_mean(batch.advantages.abs(), mask)),
            "scored_lines": float(rewards.line_mask.sum()) / max(sum(e.num_lines for e in episodes), 1),
        }

    def _metrics_row(self, batch: PPOBatch, losses: dict[str, float], stats: dict[str, float],
                     timing: dict[str, float]) -> dict[str, Any]:  # fmt: skip
        """The iteration's metrics row: ``losses/*``, ``charts/*`` and ``time/*``."""
        n_tokens = batch.num_action_tokens
        row: dict[str, Any] = {"iteration": self.iteration, "time": time.time()}
        row.update({f"losses/{k}": v for k, v in losses.items() if k != "grad_norm"})
        row.update({f"charts/{k}": v for k, v in stats.items()})
        row.update({
            "charts/kl_coef": self.config.kl_coef,
            "charts/grad_norm": losses["grad_norm"],
            "charts/rollout_tokens_per_s": n_tokens / max(timing["rollout"], 1e-9),
            "charts/update_tokens_per_s": n_tokens * self.config.update_epochs / max(timing["update"], 1e-9),
            "charts/score_tokens_per_s": int(batch.attention_mask.sum()) / max(timing["score"], 1e-9),
        })  # fmt: skip
        row.update({f"time/{k}": v for k, v in timing.items()})
        return row

    # ------------------------------------------------------------ checkpoints
    def save_state(self, path: Path) -> None:
        """Policy, optimiser and iteration into checkpoint ``path``."""
        self.policy.save_pretrained(path / "policy")
        self.tokenizer.save_pretrained(path / "policy")
        torch.save({"iteration": self.iteration, "opt_policy": self.opt_policy.state_dict()}, path / STATE)

    def load_state(self, path: Path) -> None:
        state = torch.load(path / STATE, map_location=self.device, weights_only=False)
        self.iteration = int(state["iteration"])
        self.opt_policy.load_state_dict(state["opt_policy"])

    def save_final(self) -> None:
        """Write ``out/policy`` (loadable by ``codegym eval --agent grpo --model OUT``)."""
        self.policy.save_pretrained(self.out / "policy")
        self.tokenizer.save_pretrained(self.out / "policy")

    def card(self) -> dict[str, Any]:
        return grpo_card(self.out, self.config, self.policy_dir, self.prm_dir)

    def write_card(self) -> Path | None:
        """The card (``out/README.md``), copied to ``out/policy/README.md``."""
        path = super().write_card()
        if path is not None:
            copy_card_to_policy(path)
        return path


__all__ = ["GRPOTrainer", "GroupRewards"]
