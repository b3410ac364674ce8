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
   token's reward and GAE runs over tokens (:func:`agents.ppo.gae.compute_gae`);
4. **minibatch epochs** — ``update_epochs`` passes over :meth:`PPOBatch.minibatches`:
   clipped policy loss on whitened advantages (after the critic warm-up), clipped value loss,
   gradient clipping, separate Adam optimisers;
5. **logging** — a JSONL row of ``losses/*`` and ``charts/*`` per iteration (and TensorBoard
   scalars of the same names with ``report_to="tensorboard"``), and a resumable checkpoint;
   the final models get a model card (``OUT/README.md``).

Data parallel: run under ``accelerate launch`` and each process rolls out its own tasks
(seeded by rank); gradients are averaged by DDP (``torch.distributed``; gloo on CPU).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from agents.ppo.batch import Episode, PPOBatch, episodes_from_records, forward, split_batch
from agents.ppo.config import PPOConfig
from agents.ppo.critic import build_critic, save_critic
from agents.ppo.gae import compute_gae, masked_mean, masked_whiten, place_rewards
from agents.ppo.losses import (
    KLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
)
from agents.ppo.shared_prompt import SplitBatch
from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache
from codegym.envs.vector import CodePRMVectorEnv
from codegym.rollout import SamplerAgent, run_episodes
from codegym.sampling import LineSampler
from codegym.tasks import load_suite
from codegym.training.checkpoint import Checkpointer, MetricsWriter
from codegym.training.seeding import stream_generator, stream_rng
from sandboxes import make_sandbox

CHECKPOINT = "checkpoint"
STATE = "state.pt"
REFERENCE = "reference"
METRICS = "metrics.jsonl"


class PPOTrainer:
    """Trains a causal-LM policy with PPO in ``CodePRM-v0``.

    Args:
        config: The :class:`PPOConfig`.
        policy_dir: ``save_pretrained`` directory of the starting policy (and its tokenizer).
        out_dir: Run directory: ``config.json``, ``metrics.jsonl``, ``reference/``,
            ``checkpoint/`` (resumable), ``policy/`` and ``critic/`` (final).
        prm_dir: PRM checkpoint (needed for dense rewards and ``value_init="prm"``).
        accelerator: An ``accelerate.Accelerator`` for data-parallel training, or None.
        on_iteration: Called with each metrics row (e.g. a progress bar).
        sandbox: A shared :class:`sandboxes.Sandbox` (e.g. a Ray pool; not closed here), or
            None to build ``config.sandbox`` with ``config.sandbox_workers`` workers.

    Restarting with the same ``out_dir`` resumes from the last checkpoint: the iteration
    count continues and ``metrics.jsonl`` keeps the rows up to that checkpoint.
    """

    def __init__(
        self,
        config: PPOConfig,
        policy_dir: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        prm_dir: str | os.PathLike[str] | None = None,
        accelerator: Any = None,
        on_iteration: Callable[[dict[str, Any]], None] | None = None,
        sandbox: Any = None,
    ) -> None:
        self.config = config.validate()
        self.out = Path(out_dir)
        self._check_inputs(policy_dir, prm_dir)
        self.accelerator = accelerator
        self._given_sandbox = sandbox
        self.on_iteration = on_iteration
        self.rank = accelerator.process_index if accelerator is not None else 0
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.is_main = self.rank == 0
        self.device = accelerator.device if accelerator is not None else torch.device(config.device)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpointer = Checkpointer(self.out, CHECKPOINT, STATE)
        resume = self._find_checkpoint()
        self._load_models(resume)
        self._make_optimizers()
        self.iteration = 0
        if resume:
            self._load_state()
        if accelerator is not None:
            self.policy, self.critic, self.opt_policy, self.opt_critic = accelerator.prepare(
                self.policy, self.critic, self.opt_policy, self.opt_critic
            )
        self._open_run_files(resume)
        self._setup_envs()

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

    def _find_checkpoint(self) -> bool:
        """The main process recovers the newest complete checkpoint; True when there is one."""
        if self.is_main:
            self.checkpointer.latest()
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        return self.checkpointer.path.is_dir() and self.checkpointer.is_complete(self.checkpointer.path)

    def _load_models(self, resume: bool) -> None:
        """Policy (and tokenizer), frozen reference and critic: from the checkpoint or the start."""
        from codegym.lm import load_causal_lm

        config = self.config
        ckpt = self.checkpointer.path
        self.policy, self.tokenizer = load_causal_lm(ckpt / "policy" if resume else self.policy_dir, device=self.device)
        ref_dir = self.out / REFERENCE
        if resume or (ref_dir / "config.json").is_file():
            self.ref, _ = load_causal_lm(ref_dir, device=self.device)
        else:
            self.ref = copy.deepcopy(self.policy)
        self.ref.requires_grad_(False).eval()
        if resume:
            self.critic = build_critic("checkpoint", ckpt / "critic", None)
        else:
            self.critic = build_critic(config.value_init, self.prm_dir, self.policy_dir, seed=config.seed)
        self.critic.to(self.device)
        self.policy.eval()  # dropout off: rollout, old log-probs and updates use one mode
        self.critic.eval()

    def _make_optimizers(self) -> None:
        """Separate AdamW optimisers for policy and critic, and the KL controller."""
        config = self.config
        self.opt_policy = torch.optim.AdamW(
            self.policy.parameters(), lr=config.policy_lr, betas=config.adam_betas,
            eps=config.adam_eps, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.opt_critic = torch.optim.AdamW(
            self.critic.parameters(), lr=config.critic_lr, betas=config.adam_betas,
            eps=config.adam_eps, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.kl_ctl = KLController(config.kl_coef, config.adaptive_kl, config.target_kl, config.kl_horizon)

    def _open_run_files(self, resume: bool) -> None:
        """Main process: reference model, ``config.json``, metrics trimmed to the checkpoint.
        Every process: the metrics writer (rows written by the main process only)."""
        from codegym.training.tracking import Tracker

        config = self.config
        if self.is_main:
            ref_dir = self.out / REFERENCE
            if not (ref_dir / "config.json").is_file():
                self._unwrap(self.ref).save_pretrained(ref_dir)
                self.tokenizer.save_pretrained(ref_dir)
            data = config.to_dict()
            data["extra"] = {
                **data["extra"],
                "policy_dir": str(self.policy_dir),
                "prm_dir": str(self.prm_dir) if self.prm_dir else None,
                "world_size": self.world,
            }
            (self.out / "config.json").write_text(json.dumps(data, indent=2))
            MetricsWriter.trim(self.out / METRICS, "iteration", self.iteration)  # rows after the checkpoint
        self.tracker = Tracker(
            self.out, config.report_to if self.is_main else "none", "iteration",
            resume_step=self.iteration if resume else None, config=config.to_dict(),
        )  # fmt: skip
        self.metrics = MetricsWriter(self.out / METRICS, self.tracker) if self.is_main else None

    # ------------------------------------------------------------------ setup
    def _unwrap(self, model: Any) -> Any:
        if self.accelerator is not None:
            return self.accelerator.unwrap_model(model)
        return model

    def _setup_envs(self) -> None:
        """The training suite, the sandbox and the vector env that rolls out one iteration."""
        cfg = self.config
        kwargs = {"min_steps": cfg.min_steps, "max_steps": cfg.max_steps, "seed": cfg.suite_seed}
        self.suite = load_suite(cfg.suite, **kwargs) if cfg.suite == "pipelines" else load_suite(cfg.suite)
        if self._given_sandbox is not None:
            self.sandbox = self._given_sandbox
        else:
            kwargs = {"pool": cfg.sandbox_pool} if cfg.sandbox_pool else {}
            self.sandbox = make_sandbox(cfg.sandbox, workers=cfg.sandbox_workers, **kwargs)
        first = self.suite.get(self.suite.check_split(cfg.split), 0)
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
        return str(self.prm_dir)

    def close(self) -> None:
        """Close envs, the thread pool, the sandbox and the tracker."""
        if getattr(self, "metrics", None) is not None:
            self.metrics.close()  # closes the tracker too
        elif hasattr(self, "tracker"):
            self.tracker.close()
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
            tasks = [self.suite.get(cfg.split, int(i)) for i in idx]
        else:
            tasks = [self.suite.sample(rng, cfg.split) for _ in range(cfg.num_prompts)]
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
        agent = SamplerAgent(sampler, max_new_tokens=cfg.max_new_tokens, sanitize=False)
        episodes: list[Episode] = []
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
        policy = forward(self._unwrap(self.policy), batch, temperature=cfg.temperature, split=split)
        ref = forward(self.ref, batch, temperature=cfg.temperature, entropy=False, split=split)
        values = forward(self._unwrap(self.critic), batch, split=split).values  # (B, S-1)
        # KL only where the policy drew the token (a re-encoded token's log-ratio is no estimate)
        kl = torch.where(batch.policy_mask, policy.logprobs - ref.logprobs, torch.zeros_like(policy.logprobs))
        rewards = place_rewards(
            batch.action_mask, batch.line_end, batch.line_rewards, batch.final_reward, kl, self.kl_ctl.value
        )  # (B, S-1)
        gae = compute_gae(rewards, values, batch.action_mask, cfg.gamma, cfg.gae_lambda)
        return batch.with_scores(
            old_logprobs=policy.logprobs, ref_logprobs=ref.logprobs, entropy=policy.entropy, values=values,
            kl=kl, rewards=rewards, advantages=gae.advantages, returns=gae.returns,
        )  # fmt: skip

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
                split = self._split(mb)
                if train_policy:
                    self._policy_step(mb, split, logs)
                self._critic_step(mb, split, logs)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in logs.items()}

    def _policy_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]]) -> None:
        """One clipped-surrogate step of the policy on minibatch ``mb``."""
        cfg = self.config
        adv = masked_whiten(mb.advantages, mb.action_mask) if cfg.norm_adv else mb.advantages
        new = forward(self.policy, mb, temperature=cfg.temperature, split=split)
        pmask = mb.policy_mask  # tokens drawn as they stand (see agents.ppo.batch)
        pl = clipped_policy_loss(new.logprobs, mb.old_logprobs, adv, pmask, cfg.clip_coef)
        ent_mean = masked_mean(new.entropy, pmask)
        self.opt_policy.zero_grad(set_to_none=True)
        self._backward(pl.loss - cfg.ent_coef * ent_mean)
        logs["grad_norm"].append(self._clip(self.policy))
        self.opt_policy.step()
        logs["policy"].append(pl.loss.item())
        logs["entropy"].append(ent_mean.item())
        logs["approx_kl"].append(pl.approx_kl.item())
        logs["clipfrac"].append(pl.clipfrac.item())

    def _critic_step(self, mb: PPOBatch, split: SplitBatch | None, logs: dict[str, list[float]]) -> None:
        """One clipped value-loss step of the critic on minibatch ``mb``."""
        cfg = self.config
        new_v = forward(self.critic, mb, split=split).values
        vloss = clipped_value_loss(new_v, mb.values, mb.returns, mb.action_mask, cfg.vf_clip_coef if cfg.clip_vloss else None)
        self.opt_critic.zero_grad(set_to_none=True)
        self._backward(cfg.vf_coef * vloss)
        logs["value_grad_norm"].append(self._clip(self.critic))
        self.opt_critic.step()
        logs["value"].append(vloss.item())

    def _backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

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
            The metrics row (also written to ``metrics.jsonl`` every ``log_every`` iterations).
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
        if self.metrics is not None and (iteration % cfg.log_every == 0 or iteration == cfg.iterations):
            self.metrics.log(row)  # NaN (undefined metric) -> null
        if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations:
            self.save_checkpoint()
        if self.on_iteration is not None and self.is_main:
            self.on_iteration(row)
        return row

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

    def train(self, iterations: int | None = None) -> list[dict[str, Any]]:
        """Train until ``iterations`` (default ``config.iterations``) are done; save final models.

        Returns the metrics rows produced by this call (resumed runs skip done iterations).
        """
        total = self.config.iterations if iterations is None else iterations
        rows = []
        while self.iteration < total:
            rows.append(self.train_iteration())
        self.save_final()
        return rows

    def _mean_across(self, value: float) -> float:
        if self.accelerator is None or self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float32, device=self.device)
        return float(self.accelerator.reduce(t, reduction="mean"))

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Atomically replace ``out/checkpoint`` (policy, critic, optimisers, iteration, β)."""
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        if self.is_main:
            self.checkpointer.save(self._write_checkpoint, step=self.iteration)

    def _write_checkpoint(self, path: Path) -> None:
        self._unwrap(self.policy).save_pretrained(path / "policy")
        self.tokenizer.save_pretrained(path / "policy")
        save_critic(self._unwrap(self.critic), path / "critic", self.tokenizer)
        state = {
            "iteration": self.iteration,
            "kl_coef": self.kl_ctl.value,
            "opt_policy": self.opt_policy.state_dict(),
            "opt_critic": self.opt_critic.state_dict(),
        }
        torch.save(state, path / STATE)

    def _load_state(self) -> None:
        state = torch.load(self.checkpointer.path / STATE, map_location=self.device, weights_only=False)
        self.iteration = int(state["iteration"])
        self.kl_ctl.value = float(state["kl_coef"])
        self.opt_policy.load_state_dict(state["opt_policy"])
        self.opt_critic.load_state_dict(state["opt_critic"])

    def save_final(self) -> None:
        """Write ``out/policy`` (loadable by ``codegym eval --agent ppo --model OUT``) and
        ``out/critic``."""
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        if not self.is_main:
            return
        self._unwrap(self.policy).save_pretrained(self.out / "policy")
        self.tokenizer.save_pretrained(self.out / "policy")
        save_critic(self._unwrap(self.critic), self.out / "critic", self.tokenizer)
        from agents.ppo.modelcard import write_ppo_card

        write_ppo_card(self.out, self.config, self.policy_dir, self.prm_dir)
