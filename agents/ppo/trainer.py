"""LLM-PPO with line-level rewards and a PRM-initialised critic (token-level PPO).

Reads like CleanRL's ``ppo.py``; one iteration is

1. **rollout** — ``num_prompts`` training tasks × ``samples_per_prompt`` programs sampled
   line by line through ``CodePRM-v1`` envs (:mod:`agents.ppo.rollout`); the env gives each
   line's dense reward and the unit-test reward;
2. **advantages** — one no-grad pass of policy, frozen reference and critic over the
   programs *as drawn* (the sampler keeps the policy's own token ids) gives old log-probs, the
   per-token KL and values; rewards are placed on tokens (line rewards on line ends,
   unit-test reward on the final token, −β·KL on every drawn token), under closed shaping the
   values are clamped to the shaped return's range (``value_bounds``), and GAE runs over
   tokens (:func:`agents.ppo.gae.compute_gae`);
3. **flatten / minibatch epochs** — ``update_epochs`` passes over shuffled minibatches of
   episodes: clipped policy loss on whitened advantages (after the critic warm-up), clipped
   value loss, gradient clipping, separate Adam optimisers;
4. **logging** — a JSONL row of ``losses/*`` and ``charts/*`` per iteration (and TensorBoard
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.ppo.config import PPOConfig
from agents.ppo.critic import build_critic, critic_values, save_critic
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
    token_logprobs,
)
from agents.ppo.rollout import (
    Episode,
    RolloutBatch,
    collect_episodes,
    episodes_to_batch,
    prefix_accuracy,
)
from agents.ppo.shared_prompt import (
    SplitBatch,
    shared_prompt_logits,
    shared_prompt_values,
    split_by_prompt,
    to_full,
)
from codegym.checkpoint import Checkpointer, MetricsWriter

CHECKPOINT = "checkpoint"
STATE = "state.pt"
REFERENCE = "reference"
METRICS = "metrics.jsonl"


def _policy_logprobs(
    model: Any, batch: RolloutBatch, temperature: float, entropy: bool, split: SplitBatch | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B, S-1] of the batch's targets (and entropy) under ``model``.

    With ``split`` each group's prompt is encoded once (:mod:`agents.ppo.shared_prompt`); the
    result is the same at the action positions and 0 elsewhere.
    """
    if split is not None:
        logits = shared_prompt_logits(model, split)  # [B, C, V]
        stats = token_logprobs(logits, split.comp_ids, temperature, entropy=entropy)
        length = batch.input_ids.shape[1]
        return to_full(stats.logprobs, split, length), to_full(stats.entropy, split, length)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    stats = token_logprobs(logits[:, :-1], batch.targets, temperature, entropy=entropy)
    return stats.logprobs, stats.entropy


def _index(batch: RolloutBatch, idx: torch.Tensor) -> RolloutBatch:
    """Rows ``idx`` of every tensor of the batch, trimmed to the rows' longest sequence."""
    rows = RolloutBatch(*(t[idx] for t in batch))
    length = int(rows.attention_mask.sum(dim=1).max())
    return rows._replace(
        input_ids=rows.input_ids[:, :length],
        attention_mask=rows.attention_mask[:, :length],
        targets=rows.targets[:, : length - 1],
        action_mask=rows.action_mask[:, : length - 1],
        policy_mask=rows.policy_mask[:, : length - 1],
    )


class PPOTrainer:
    """Trains a causal-LM policy with PPO in ``CodePRM-v1``.

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
        from codegym.tracking import Tracker

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
        import gymnasium as gym

        import codegym  # noqa: F401  (registers CodePRM-v1)
        from codegym.tasks import load_suite
        from sandboxes import make_sandbox

        cfg = self.config
        kwargs = {"min_steps": cfg.min_steps, "max_steps": cfg.max_steps, "seed": cfg.suite_seed}
        self.suite = load_suite(cfg.suite, **kwargs) if cfg.suite == "pipelines" else load_suite(cfg.suite)
        if self._given_sandbox is not None:
            self.sandbox = self._given_sandbox
        else:
            kwargs = {"pool": cfg.sandbox_pool} if cfg.sandbox_pool else {}
            self.sandbox = make_sandbox(cfg.sandbox, workers=cfg.sandbox_workers, **kwargs)
        self.pool = ThreadPoolExecutor(max_workers=cfg.sandbox_workers)
        first = self.suite.get(self.suite.check_split(cfg.split), 0)
        scorers = self._line_scorers(cfg.batch_size)
        env_mode = {"none": "none", "delta": "delta", "delta_open": "delta_open", "paper": "none"}
        self.envs = [
            gym.make(
                "CodePRM-v1", tasks=[first], sandbox=self.sandbox, prm=scorers[i],
                reward_mode=env_mode[cfg.dense_reward], test_reward=cfg.unit_test_reward,
                max_lines=cfg.max_lines, invalid_action="end", potential=cfg.potential_scale,
                disable_env_checker=True,
            )
            for i in range(cfg.batch_size)
        ]  # fmt: skip

    def _line_scorers(self, n: int) -> list[Any]:
        """One line scorer per env (PRM scorers share one model; oracle scorers one verdict
        cache), or ``None`` without dense reward."""
        cfg = self.config
        if cfg.dense_reward == "none":
            return [None] * n
        if cfg.dense_source == "oracle":
            from codegym.envs.oracle import ReferenceCompletionScorer, VerdictCache

            cache = VerdictCache()
            return [ReferenceCompletionScorer(self.sandbox, cache=cache) for _ in range(n)]
        from codegym.prm import load_line_scorers

        return load_line_scorers(str(self.prm_dir), n, device=str(self.device))

    def close(self) -> None:
        """Close envs, the thread pool, the sandbox and the tracker."""
        if getattr(self, "metrics", None) is not None:
            self.metrics.close()  # closes the tracker too
        elif hasattr(self, "tracker"):
            self.tracker.close()
        for env in getattr(self, "envs", []):
            env.close()
        if hasattr(self, "pool"):
            self.pool.shutdown(wait=True)
        if hasattr(self, "sandbox") and self._given_sandbox is None:
            self.sandbox.close()

    # ---------------------------------------------------------------- rollout
    def _draw_tasks(self, iteration: int) -> list[Any]:
        """The iteration's tasks: ``num_prompts`` distinct draws, each repeated per sample."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, iteration, self.rank])
        if cfg.task_pool:
            idx = rng.choice(cfg.task_pool, size=cfg.num_prompts, replace=cfg.num_prompts > cfg.task_pool)
            tasks = [self.suite.get(cfg.split, int(i)) for i in idx]
        else:
            tasks = [self.suite.sample(rng, cfg.split) for _ in range(cfg.num_prompts)]
        return [t for t in tasks for _ in range(cfg.samples_per_prompt)]

    @torch.no_grad()
    def rollout(self, iteration: int) -> tuple[list[Episode], float]:
        """Sample the iteration's programs; returns episodes and seconds spent."""
        from codegym.sampling import LineSampler

        cfg = self.config
        start = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(
            int(cfg.seed) * 1_000_003 + iteration * 1009 + self.rank
        )
        sampler = LineSampler(
            self._unwrap(self.policy), self.tokenizer, temperature=cfg.temperature,
            max_line_tokens=cfg.max_line_tokens, generator=gen, reencode=False,
        )  # fmt: skip
        episodes = collect_episodes(
            sampler, self.envs, self._draw_tasks(iteration), max_new_tokens=cfg.max_new_tokens,
            dense_reward=cfg.dense_reward, dense_coef=cfg.dense_coef,
            unit_test_reward=cfg.unit_test_reward, pool=self.pool,
        )  # fmt: skip
        return episodes, time.perf_counter() - start

    # ------------------------------------------------------------- advantages
    @torch.no_grad()
    def score(self, batch: RolloutBatch) -> dict[str, torch.Tensor]:
        """Old log-probs, reference log-probs, values, rewards, advantages and returns."""
        cfg = self.config
        split = self._split(batch)
        old_lp, entropy = _policy_logprobs(self._unwrap(self.policy), batch, cfg.temperature, True, split)
        ref_lp, _ = _policy_logprobs(self.ref, batch, cfg.temperature, False, split)
        values = self._values(self._unwrap(self.critic), batch, split)  # [B, S-1]
        mask = batch.action_mask
        # KL only where the policy drew the token (a re-encoded token's log-ratio is no estimate)
        kl = torch.where(batch.policy_mask, old_lp - ref_lp, torch.zeros_like(old_lp))  # [B, S-1]
        rewards = place_rewards(
            mask, batch.line_end, batch.line_rewards, batch.final_reward, kl, self.kl_ctl.value
        )
        gae = compute_gae(rewards, self._bounded(values, batch), mask, cfg.gamma, cfg.gae_lambda)
        return {
            "old_logprobs": old_lp, "ref_logprobs": ref_lp, "entropy": entropy, "values": values, "kl": kl,
            "rewards": rewards, "advantages": gae.advantages, "returns": gae.returns,
        }  # fmt: skip

    def _bounded(self, values: torch.Tensor, batch: RolloutBatch) -> torch.Tensor:
        """``values`` [B, S-1] clamped to the shaped return's range (``value_bounds`` with closed
        shaping, see :class:`PPOConfig`), else as they are."""
        cfg = self.config
        if not (cfg.value_bounds and cfg.dense_reward == "delta"):
            return values
        potential = token_potentials(batch.action_mask, batch.line_end, batch.line_rewards, batch.final_dense)
        return bound_values(values, potential, 0.0, 1.0)  # binary and fraction rewards lie in [0, 1]

    # ------------------------------------------------------- shared prompts
    def _split(self, batch: RolloutBatch) -> SplitBatch | None:
        """The batch split by prompt group (``shared_prompt`` on, single process), else None."""
        if not self._split_active():
            return None
        pad = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id)
        return split_by_prompt(batch.input_ids, batch.attention_mask, batch.prompt_len, batch.group, pad)

    def _values(self, critic: Any, batch: RolloutBatch, split: SplitBatch | None) -> torch.Tensor:
        """Values [B, S-1]: the value of the state in which each token was chosen."""
        if split is not None:
            return shared_prompt_values(self._unwrap(critic), split, batch.input_ids.shape[1])
        return critic_values(critic, batch.input_ids, batch.attention_mask)[:, :-1]

    def _minibatches(self, batch: RolloutBatch, gen: torch.Generator) -> list[torch.Tensor]:
        """Row indices of one epoch's minibatches: shuffled rows, or with ``shared_prompt``
        shuffled whole prompt groups (so each minibatch encodes few prompts)."""
        cfg = self.config
        n = batch.input_ids.shape[0]
        if self._split_active():
            groups = torch.unique(batch.group.cpu())
            order = groups[torch.randperm(len(groups), generator=gen)]
            chunks = torch.tensor_split(order, min(cfg.num_minibatches, len(order)))
            rows = batch.group.cpu()
            return [torch.nonzero(torch.isin(rows, c)).squeeze(1) for c in chunks if len(c)]
        mb_size = max(1, n // cfg.num_minibatches)
        perm = torch.randperm(n, generator=gen)
        return [perm[lo : lo + mb_size] for lo in range(0, n - mb_size + 1, mb_size)]

    def _split_active(self) -> bool:
        return self.config.shared_prompt and self.world == 1

    # ----------------------------------------------------------------- update
    def update(self, batch: RolloutBatch, scored: dict[str, torch.Tensor], train_policy: bool) -> dict[str, float]:
        """Minibatch epochs of clipped policy and value losses; returns mean diagnostics."""
        cfg = self.config
        gen = torch.Generator().manual_seed(int(cfg.seed) * 7919 + self.iteration * 31 + self.rank)
        logs: dict[str, list[float]] = {
            k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac", "grad_norm", "value_grad_norm")
        }
        self.policy.train(False)
        for _ in range(cfg.update_epochs):
            for idx in self._minibatches(batch, gen):
                mb = _index(batch, idx.to(batch.input_ids.device))
                split = self._split(mb)
                length = mb.action_mask.shape[1]
                mask = mb.action_mask
                old_lp = scored["old_logprobs"][idx][:, :length]
                adv = scored["advantages"][idx][:, :length]
                ret = scored["returns"][idx][:, :length]
                old_v = scored["values"][idx][:, :length]
                if cfg.norm_adv:
                    adv = masked_whiten(adv, mask)
                if train_policy:
                    new_lp, ent = _policy_logprobs(self.policy, mb, cfg.temperature, True, split)
                    pmask = mb.policy_mask  # tokens drawn as they stand (see agents.ppo.rollout)
                    pl = clipped_policy_loss(new_lp, old_lp, adv, pmask, cfg.clip_coef)
                    ent_mean = masked_mean(ent, pmask)
                    loss = pl.loss - cfg.ent_coef * ent_mean
                    self.opt_policy.zero_grad(set_to_none=True)
                    self._backward(loss)
                    logs["grad_norm"].append(self._clip(self.policy))
                    self.opt_policy.step()
                    logs["policy"].append(pl.loss.item())
                    logs["entropy"].append(ent_mean.item())
                    logs["approx_kl"].append(pl.approx_kl.item())
                    logs["clipfrac"].append(pl.clipfrac.item())
                new_v = self._values(self.critic, mb, split)
                vclip = cfg.vf_clip_coef if cfg.clip_vloss else None
                vloss = clipped_value_loss(new_v, old_v, ret, mask, vclip)
                self.opt_critic.zero_grad(set_to_none=True)
                self._backward(cfg.vf_coef * vloss)
                logs["value_grad_norm"].append(self._clip(self.critic))
                self.opt_critic.step()
                logs["value"].append(vloss.item())
        return {k: float(np.mean(v)) if v else float("nan") for k, v in logs.items()}

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
        """One iteration in CleanRL's order: rollout, advantages, minibatch epochs, logging.

        Returns:
            The metrics row (also written to ``metrics.jsonl`` every ``log_every`` iterations).
        """
        cfg = self.config
        iteration = self.iteration + 1
        episodes, t_rollout = self.rollout(iteration)
        start = time.perf_counter()
        batch = RolloutBatch(*(t.to(self.device) for t in episodes_to_batch(episodes, self.tokenizer)))
        scored = self.score(batch)
        t_score = time.perf_counter() - start
        start = time.perf_counter()
        train_policy = iteration > cfg.critic_warmup_iterations
        losses = self.update(batch, scored, train_policy)
        t_update = time.perf_counter() - start
        self.iteration = iteration
        beta = self.kl_ctl.value
        stats = self._episode_stats(episodes, batch, scored)
        self.kl_ctl.update(stats["kl"], len(episodes) * self.world)
        timing = {"rollout": t_rollout, "score": t_score, "update": t_update}
        row = self._metrics_row(batch, scored, losses, stats, timing, beta=beta, train_policy=train_policy)
        row.update(shaping_diagnostics(episodes, batch, scored, cfg.max_lines))
        if self.is_main:
            with open(self.out / "samples.jsonl", "a", encoding="utf-8") as fh:  # a few programs per iteration
                fh.write(json.dumps({"iteration": iteration, "programs": sample_programs(episodes[:: cfg.samples_per_prompt])}) + "\n")
        if self.metrics is not None and (iteration % cfg.log_every == 0 or iteration == cfg.iterations):
            self.metrics.log(row)  # NaN (undefined metric) -> null
        if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations:
            self.save_checkpoint()
        if self.on_iteration is not None and self.is_main:
            self.on_iteration(row)
        return row

    def _episode_stats(self, episodes: list[Episode], batch: RolloutBatch, scored: dict[str, torch.Tensor]) -> dict[str, float]:
        """Rollout statistics averaged across processes (``charts/*`` of the metrics row)."""
        mask = batch.action_mask
        n_tokens = int(mask.sum())
        stats = {
            "pass_rate": float(np.mean([e.passed for e in episodes])),
            "return": float((scored["rewards"] * mask).sum(dim=1).mean()),
            "test_reward": float(np.mean([e.test_reward for e in episodes])),
            "dense_reward": float(np.mean([sum(e.line_rewards) for e in episodes])),
            "kl": float((scored["kl"] * mask).sum(dim=1).mean()),
            "entropy": float(masked_mean(scored["entropy"], mask)),
            "lines": float(np.mean([e.num_lines for e in episodes])),
            "tokens": n_tokens / len(episodes),
            "prefix_accuracy": float(np.mean([prefix_accuracy(e) for e in episodes])),
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
        batch: RolloutBatch,
        scored: dict[str, torch.Tensor],
        losses: dict[str, float],
        stats: dict[str, float],
        timing: dict[str, float],
        *,
        beta: float,
        train_policy: bool,
    ) -> dict[str, Any]:
        """The iteration's metrics row: ``losses/*``, ``charts/*`` and ``time/*``."""
        n_tokens = int(batch.action_mask.sum())
        row: dict[str, Any] = {"iteration": self.iteration, "time": time.time()}
        row.update({f"losses/{k}": v for k, v in losses.items() if k not in ("grad_norm", "value_grad_norm")})
        row.update({f"charts/{k}": v for k, v in stats.items()})
        row.update(
            {
                "charts/kl_coef": beta,
                "charts/explained_variance": explained_variance(scored["values"], scored["returns"], batch.action_mask),
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
