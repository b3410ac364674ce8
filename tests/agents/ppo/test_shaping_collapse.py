"""Closed shaping in PPO, in miniature: why ``oracle-dense`` collapsed to empty programs.

**Identity** (exact, any λ, γ = 1): closed potential-based shaping — line ``m`` earns
``Φ_m − Φ_{m−1}``, the final token ``−Φ_last`` — with a critic ``V`` gives the same GAE
advantages as the unit-test reward alone with the critic ``V + Φ(prefix)``. Every
consequence of the dense reward for PPO is therefore a consequence of that offset critic.

**The collapse.** The critic must learn ``V = E[test] − Φ(prefix)``, but it cannot see what
Φ measures (whether the prefix is still correct), so it predicts a mixture: too high on
correct prefixes, and *below* ``−Φ = 0`` on wrong ones, where nothing is left to lose. Ending
a wrong program then always earns ``0 − V > 0``: the policy learns to submit after a wrong
line; shorter programs put more early, correct-prefix states (value −1) into the critic's
mixture, which pushes its values on wrong prefixes further down, which makes submitting
more attractive still. Measured on the hard regime (6-8-step tasks): EOS after a wrong prefix
had advantage +0.05 at iteration 50 and +0.66 at 66; the critic's error on wrong prefixes
went from −0.17 to −0.50; programs from 7.1 lines to 0.8; KL to 16 nats (an immediate EOS
costs 17 under the reference). The fix (``PPOConfig.value_bounds``) clamps the values to
the range the shaped return can take, ``[0 − Φ, 1 − Φ]``.

The miniature: episodes of a hard task (each line correct with probability 0.6, failures
everywhere), some programs submitted right after their first wrong line; a critic that
knows every token's position but not its prefix's correctness, fitted to its own λ-returns
(as PPO fits it); the real reward placement, potentials, bounds and GAE of the trainer. A
tiny real trainer then checks that ``score`` applies the bound.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.ppo.config import PPOConfig
from agents.ppo.gae import bound_values, compute_gae, place_rewards, token_potentials

LINES, TOKENS = 6, 4  # lines per program, tokens per line (+ an EOS token at the end)


def _potential_per_token(line_end: torch.Tensor, phi: torch.Tensor, phi_empty: float, length: int) -> torch.Tensor:
    """[B, T]: Φ of the prefix of complete lines in which each token is chosen."""
    batch = line_end.shape[0]
    out = torch.full((batch, length), phi_empty)
    for b in range(batch):
        for m, end in enumerate(line_end[b].tolist()):
            if end >= 0:
                out[b, end + 1 :] = phi[b, m]
    return out


def test_closed_shaping_is_sparse_reward_with_a_potential_offset_critic() -> None:
    gen = torch.Generator().manual_seed(0)
    batch, length, lines = 6, 14, 4
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[2, 9:] = False  # episodes of different lengths
    mask[4, 5:] = False
    line_end = torch.tensor([[2, 5, 8, 12], [3, 6, 10, -1], [1, 4, 7, -1], [3, 7, 11, 12], [2, 4, -1, -1],
                             [1, 3, 5, 9]])  # fmt: skip
    phi = torch.rand(batch, lines, generator=gen).round()  # exact potential: 0/1 per prefix
    phi_empty = 1.0
    test = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    values = torch.randn(batch, length, generator=gen)
    kl = 0.1 * torch.randn(batch, length, generator=gen)
    n_lines = (line_end >= 0).sum(1)
    phi_last = torch.stack([phi[b, n_lines[b] - 1] for b in range(batch)])
    prev = torch.cat([torch.full((batch, 1), phi_empty), phi[:, :-1]], dim=1)
    dense = torch.where(line_end >= 0, phi - prev, torch.zeros_like(phi))
    shaped = place_rewards(mask, line_end, dense, test - phi_last, kl, 0.03)
    sparse = place_rewards(mask, line_end, torch.zeros_like(dense), test, kl, 0.03)
    offset = _potential_per_token(line_end, phi, phi_empty, length)
    # the trainer recovers the same potentials from the rewards alone
    torch.testing.assert_close(token_potentials(mask, line_end, dense, -phi_last), torch.where(mask, offset, 0.0))
    for lam in (0.0, 0.5, 0.95, 1.0):
        a = compute_gae(shaped, values, mask, 1.0, lam).advantages
        b = compute_gae(sparse, values + offset, mask, 1.0, lam).advantages
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


class Episodes:
    """A batch of hard-task programs as the trainer lays them out (one row per program)."""

    def __init__(self, n: int, stop_share: float, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        length = LINES * TOKENS + 1
        self.mask = torch.zeros(n, length, dtype=torch.bool)
        self.line_end = torch.full((n, LINES), -1)
        self.dense = torch.zeros(n, LINES)
        self.test = torch.zeros(n)
        self.closing = torch.zeros(n)
        for b in range(n):
            first_error = next((m for m in range(LINES) if torch.rand(1, generator=gen) > 0.6), None)
            stops = first_error is not None and bool(torch.rand(1, generator=gen) < stop_share)
            lines = first_error + 1 if stops else LINES  # submitted right after the wrong line
            self.mask[b, : lines * TOKENS + 1] = True
            phi = 1.0  # Φ(empty) = 1: the reference completes the empty program
            for m in range(lines):
                self.line_end[b, m] = m * TOKENS + TOKENS - 1
                new = 0.0 if first_error is not None and m >= first_error else 1.0
                self.dense[b, m], phi = new - phi, new
            self.test[b] = float(first_error is None)
            self.closing[b] = -phi

    def advantages(self, bounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Advantages under closed shaping with a position-only critic fitted to its own
        λ-returns (bounded or not), and the potentials."""
        rewards = place_rewards(self.mask, self.line_end, self.dense, self.test + self.closing)
        potential = token_potentials(self.mask, self.line_end, self.dense, self.closing)
        values = torch.zeros_like(rewards)
        for _ in range(30):  # the critic's fixed point: per-position mean of the λ-returns
            used = bound_values(values, potential) if bounded else values
            returns = compute_gae(rewards, used, self.mask, 1.0, 0.95).returns
            per_position = (returns * self.mask).sum(0) / self.mask.sum(0).clamp(min=1)
            values = per_position.expand_as(returns).clone()
        used = bound_values(values, potential) if bounded else values
        return compute_gae(rewards, used, self.mask, 1.0, 0.95).advantages, potential

    def ends_after_wrong_line(self, potential: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens chosen right after a wrong prefix's last line: the EOS, and the first token
        of a next line."""
        last = (self.mask.long() * torch.arange(self.mask.shape[1])).max(1).values
        eos, go_on = torch.zeros_like(self.mask), torch.zeros_like(self.mask)
        for b, m in torch.nonzero(self.line_end >= 0).tolist():
            t = int(self.line_end[b, m]) + 1
            if t <= last[b] and potential[b, t] == 0.0:
                (eos if t == last[b] else go_on)[b, t] = True
        return eos, go_on


def _stop_advantage(stop_share: float, bounded: bool) -> tuple[float, float]:
    """Mean advantage of submitting after a wrong line, and of submitting minus going on."""
    eps = Episodes(256, stop_share)
    adv, potential = eps.advantages(bounded)
    eos, go_on = eps.ends_after_wrong_line(potential)
    return float(adv[eos].mean()), float(adv[eos].mean() - adv[go_on].mean())


def test_a_critic_blind_to_correctness_rewards_submitting_after_a_wrong_line_more_the_more_it_happens() -> None:
    """Without the bound: the mechanism of the collapse (a positive feedback loop)."""
    stop = [_stop_advantage(share, bounded=False) for share in (0.0, 0.3, 0.6)]
    assert stop[1][0] > 0.05 and stop[2][0] > stop[1][0] + 0.05, stop  # submitting pays, more and more
    assert stop[2][1] > stop[0][1] + 0.1, stop  # ... and more than going on, the more programs stop


def test_bounded_values_leave_no_reason_to_stop_after_a_wrong_line() -> None:
    """With ``value_bounds`` (the default): submitting after a wrong line earns what the
    truth says, nothing, at every share of programs that do it."""
    assert PPOConfig().value_bounds
    for share in (0.0, 0.3, 0.6):
        eos, versus = _stop_advantage(share, bounded=True)
        assert abs(eos) < 1e-6 and abs(versus) < 1e-6, (share, eos, versus)


@pytest.mark.parametrize("value_bounds", [False, True])
def test_trainer_scores_with_bounded_values(tiny_policy_dir: Path, tmp_path: Path, value_bounds: bool) -> None:
    """A real rollout (tiny random policy, exact oracle potential, real sandbox) scored by the
    trainer with a critic that underestimates every state by 0.5: without the bound the last
    token of every wrong program gets +0.5; with it, 0 minus the KL penalty."""
    from agents.ppo.batch import PPOBatch
    from agents.ppo.diagnostics import prefix_ok
    from agents.ppo.trainer import PPOTrainer
    from codegym.tasks import SuiteConfig

    cfg = PPOConfig(
        num_prompts=2, samples_per_prompt=4, max_new_tokens=24, max_line_tokens=12, max_lines=3,
        suite=SuiteConfig(split="train", min_lines=2, max_lines=3, seed=0), critic_warmup_iterations=1,
        num_minibatches=1, sandbox_workers=1, torch_threads=1, dense_reward="delta", dense_source="oracle",
        value_bounds=value_bounds,
    )  # fmt: skip
    trainer = PPOTrainer(cfg, tiny_policy_dir, tmp_path / "run")
    try:
        trainer.critic.value_shift = -0.5  # the measured sign of the critic's error on wrong prefixes
        episodes = trainer.rollout(1)
        batch = trainer.compute_advantages(PPOBatch.from_episodes(episodes, trainer.tokenizer))
    finally:
        trainer.close()
    last = (batch.action_mask.long() * torch.arange(batch.action_mask.shape[1])).max(1).values
    rows = torch.arange(len(episodes))
    wrong = prefix_ok(batch, episodes)[rows, last] == 0  # the program ends on a wrong prefix
    assert bool(wrong.any()), "the random policy wrote no wrong program"
    final = batch.advantages[rows, last][wrong] + cfg.kl_coef * batch.kl[rows, last][wrong]
    if value_bounds:
        torch.testing.assert_close(final, torch.zeros_like(final), atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(final, torch.full_like(final, 0.5), atol=1e-5, rtol=0)
