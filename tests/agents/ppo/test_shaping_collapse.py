"""Closed shaping in PPO, in miniature: what the dense reward does to the advantages.

**Identity** (exact, any λ, γ = 1): closed potential-based shaping — line ``m`` earns
``Φ_m − Φ_{m−1}``, the final token ``−Φ_last`` — with a critic ``V`` gives the same GAE
advantages as the unit-test reward alone with the critic ``V + Φ(prefix)``. Every
consequence of the dense reward for PPO is therefore a consequence of that offset critic.
"""

from __future__ import annotations

import torch

from agents.ppo.gae import compute_gae, place_rewards


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
    for lam in (0.0, 0.5, 0.95, 1.0):
        a = compute_gae(shaped, values, mask, 1.0, lam).advantages
        b = compute_gae(sparse, values + offset, mask, 1.0, lam).advantages
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
