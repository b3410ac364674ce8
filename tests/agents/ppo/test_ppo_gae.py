"""GAE over tokens against hand-computed values (several γ/λ and episode layouts)."""

from __future__ import annotations

import pytest
import torch

from agents.ppo.gae import bound_values, compute_gae, masked_whiten, place_rewards, token_potentials


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# One episode r = [0, 0, 1], V = [0.5, 0.6, 0.7], terminal after the last token.
# Hand-computed:
#   γ=1, λ=1:    A = Σ future r − V          = [0.5, 0.4, 0.3]
#   γ=0.9, λ=0.5: δ = [0.9·0.6−0.5, 0.9·0.7−0.6, 1−0.7] = [0.04, 0.03, 0.3]
#                 A2 = 0.3, A1 = 0.03 + 0.45·0.3 = 0.165, A0 = 0.04 + 0.45·0.165 = 0.11425
#   γ=0.9, λ=0:  A = δ                       = [0.04, 0.03, 0.3]
#   γ=0,   λ=0.7: A = r − V                  = [−0.5, −0.6, 0.3]
#   γ=1,   λ=0.95: δ = [0.1, 0.1, 0.3]; A2 = 0.3, A1 = 0.1 + 0.95·0.3 = 0.385,
#                  A0 = 0.1 + 0.95·0.385 = 0.46575
@pytest.mark.parametrize(
    ("gamma", "lam", "expected"),
    [
        (1.0, 1.0, [0.5, 0.4, 0.3]),
        (0.9, 0.5, [0.11425, 0.165, 0.3]),
        (0.9, 0.0, [0.04, 0.03, 0.3]),
        (0.0, 0.7, [-0.5, -0.6, 0.3]),
        (1.0, 0.95, [0.46575, 0.385, 0.3]),
    ],
)
def test_single_episode_hand_values(gamma: float, lam: float, expected: list[float]) -> None:
    rewards = _t([[0.0, 0.0, 1.0]])
    values = _t([[0.5, 0.6, 0.7]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    out = compute_gae(rewards, values, mask, gamma, lam)
    torch.testing.assert_close(out.advantages, _t([expected]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.returns, _t([expected]) + values, atol=1e-6, rtol=0)


def test_padding_layouts_match_unpadded_episode() -> None:
    """Right padding, left padding and a gap all give the unpadded episode's values."""
    gamma, lam = 0.9, 0.5
    expected = [0.11425, 0.165, 0.3]
    pad = -9.0  # garbage at padding must not leak in
    rewards = _t(
        [
            [0.0, 0.0, 1.0, pad, pad],  # right padding
            [pad, pad, 0.0, 0.0, 1.0],  # left padding
            [0.0, pad, 0.0, pad, 1.0],  # gaps between tokens
        ]
    )
    values = _t(
        [
            [0.5, 0.6, 0.7, pad, pad],
            [pad, pad, 0.5, 0.6, 0.7],
            [0.5, pad, 0.6, pad, 0.7],
        ]
    )
    mask = torch.tensor(
        [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=torch.bool
    )
    out = compute_gae(rewards, values, mask, gamma, lam)
    for row in range(3):
        got = out.advantages[row][mask[row]]
        torch.testing.assert_close(got, torch.tensor(expected), atol=1e-6, rtol=0)
        assert torch.all(out.advantages[row][~mask[row]] == 0)
        assert torch.all(out.returns[row][~mask[row]] == 0)


def test_rows_of_different_lengths_and_bootstrap() -> None:
    """Rows are independent episodes; ``last_values`` bootstraps a truncated row.

    Row 0: one token, r=2, V=0.5, terminal            -> A = [1.5]
    Row 1: r=[1, 0], V=[1, 2], truncated with V(s_T)=3, γ=0.5, λ=1:
        δ1 = 0 + 0.5·3 − 2 = −0.5,  δ0 = 1 + 0.5·2 − 1 = 1
        A1 = −0.5,  A0 = 1 + 0.5·(−0.5) = 0.75
    """
    rewards = _t([[2.0, 0.0], [1.0, 0.0]])
    values = _t([[0.5, 0.0], [1.0, 2.0]])
    mask = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    out = compute_gae(rewards, values, mask, 0.5, 1.0, last_values=torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(out.advantages, _t([[1.5, 0.0], [0.75, -0.5]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.returns, _t([[2.0, 0.0], [1.75, 1.5]]), atol=1e-6, rtol=0)


def test_matches_definition_on_random_batches() -> None:
    """A_t = Σ_l (γλ)^l δ_{t+l} computed directly from the definition, random layouts."""
    gen = torch.Generator().manual_seed(0)
    for gamma, lam in [(1.0, 0.95), (0.99, 0.9), (0.7, 0.3)]:
        batch, length = 5, 9
        rewards = torch.randn(batch, length, generator=gen)
        values = torch.randn(batch, length, generator=gen)
        mask = torch.rand(batch, length, generator=gen) < 0.7
        mask[:, 0] = True
        last = torch.randn(batch, generator=gen)
        out = compute_gae(rewards, values, mask, gamma, lam, last_values=last)
        for b in range(batch):
            r, v = rewards[b][mask[b]].tolist(), values[b][mask[b]].tolist()
            n = len(r)
            v_next = v[1:] + [float(last[b])]
            deltas = [r[t] + gamma * v_next[t] - v[t] for t in range(n)]
            expected = [
                sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)
            ]
            torch.testing.assert_close(
                out.advantages[b][mask[b]], torch.tensor(expected), atol=1e-5, rtol=0
            )


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        compute_gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3), 1.0, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        compute_gae(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), 1.5, 1.0)


def test_place_rewards_line_ends_final_token_and_kl() -> None:
    """Line rewards on line ends, unit-test reward on the last valid token, KL everywhere."""
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    line_end = torch.tensor([[1, 3], [2, -1]])
    line_rewards = _t([[0.25, -0.5], [0.75, 9.0]])  # 9.0 must be ignored (no line)
    final = torch.tensor([1.0, 0.0])
    kl = _t([[0.1] * 6, [0.2] * 6])
    got = place_rewards(mask, line_end, line_rewards, final, kl=kl, kl_coef=0.5)
    expected = _t(
        [
            [-0.05, 0.25 - 0.05, -0.05, -0.5 - 0.05, 1.0 - 0.05, 0.0],
            [-0.1, -0.1, 0.75 - 0.1, 0.0, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_masked_whiten() -> None:
    x = _t([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    out = masked_whiten(x, mask)
    std = (2.0 / 3.0) ** 0.5
    torch.testing.assert_close(out, _t([[-1 / std, 0.0, 1 / std, 0.0]]), atol=1e-4, rtol=0)


def test_token_potentials_and_bounds_by_hand() -> None:
    """Two lines (tokens 0-1 and 2-3) then an EOS (token 4); Φ(empty) = 1, line 1 keeps it
    (reward 0), line 2 makes the prefix wrong (−1), so the closing term is −Φ(last) = 0."""
    mask = torch.tensor([[True] * 5 + [False]])
    line_end = torch.tensor([[1, 3]])
    phi = token_potentials(mask, line_end, _t([[0.0, -1.0]]), _t([0.0]))
    torch.testing.assert_close(phi, _t([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]))
    values = _t([[-0.5, -1.5, 0.3, -0.9, -0.4, 7.0]])
    torch.testing.assert_close(bound_values(values, phi), _t([[-0.5, -1.0, 0.0, -0.9, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="must match"):
        bound_values(values, phi[:, :3])
    with pytest.raises(ValueError, match="low <= high"):
        bound_values(values, phi, 1.0, 0.0)
    with pytest.raises(ValueError, match="share B"):
        token_potentials(mask, line_end, _t([[0.0, -1.0]]), _t([0.0, 0.0]))
