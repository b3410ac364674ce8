"""Group-relative advantages against hand-computed values: GRPO, Dr. GRPO, RLOO and process
supervision on a tiny group, as ``tests/agents/ppo/test_ppo_gae.py`` does for GAE."""

from __future__ import annotations

import math

import pytest
import torch

from agents.grpo.advantages import (
    group_normalise,
    kl_to_go,
    outcome_advantages,
    process_line_advantages,
    token_advantages,
    tokens_from_lines,
)
from agents.grpo.losses import k3_kl, loss_weights
from agents.ppo.gae import masked_mean


def _t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Two groups, interleaved: group 0 = rows 0, 2, 4, 6 with rewards [1, 0, 0, 0];
# group 1 = rows 1, 3, 5, 7 with rewards [1, 1, 0, 0].
REWARDS = _t([1, 1, 0, 1, 0, 0, 0, 0])
GROUPS = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]) + 7  # any integer ids
S1 = math.sqrt(1 / 3)  # sample std of [1, 1, 0, 0]: sqrt(4 * 0.25 / 3)
# Hand-computed:
#   GRPO (mean, / sample std): group 0: mean 0.25, std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
#       -> [1.5, -0.5, -0.5, -0.5]; group 1: mean 0.5, std sqrt(1/3) -> ±0.5 / sqrt(1/3)
#   Dr. GRPO (mean, no std): group 0 -> [0.75, -0.25, -0.25, -0.25]; group 1 -> ±0.5
#   RLOO (mean of the others): group 0 -> [1 - 0, 0 - 1/3, ...]; group 1 -> [1 - 1/3, 1 - 1/3,
#       0 - 2/3, 0 - 2/3]
CASES = [
    ("mean", True, [1.5, 0.5 / S1, -0.5, 0.5 / S1, -0.5, -0.5 / S1, -0.5, -0.5 / S1]),
    ("mean", False, [0.75, 0.5, -0.25, 0.5, -0.25, -0.5, -0.25, -0.5]),
    ("leave-one-out", False, [1.0, 2 / 3, -1 / 3, 2 / 3, -1 / 3, -2 / 3, -1 / 3, -2 / 3]),
]


@pytest.mark.parametrize(("baseline", "scale", "expected"), CASES)
def test_outcome_advantages_by_hand(baseline: str, scale: bool, expected: list[float]) -> None:
    got = outcome_advantages(REWARDS, GROUPS, baseline=baseline, scale_by_std=scale, eps=0.0)
    torch.testing.assert_close(got, _t(expected), atol=1e-6, rtol=0)


def test_std_eps_and_flat_or_single_groups() -> None:
    # eps is added to the std: group 0 of REWARDS has std 0.5
    got = outcome_advantages(REWARDS, GROUPS, eps=0.5)
    assert got[0].item() == pytest.approx(0.75 / 1.0)
    # a group whose programs all got the same reward, and a group of one, get 0 in every mode
    rewards, groups = _t([0, 0, 0, 1, 1, 5]), torch.tensor([0, 0, 0, 1, 1, 2])
    for baseline in ("mean", "leave-one-out"):
        for scale in (True, False):
            out = group_normalise(rewards, groups, baseline=baseline, scale_by_std=scale)
            assert torch.equal(out, torch.zeros(6)), (baseline, scale)
    # RLOO is GRPO's centred value times n / (n - 1)
    rloo = group_normalise(REWARDS, GROUPS, baseline="leave-one-out", scale_by_std=False)
    dr = group_normalise(REWARDS, GROUPS, baseline="mean", scale_by_std=False)
    torch.testing.assert_close(rloo, dr * 4 / 3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="baseline"):
        group_normalise(REWARDS, GROUPS, baseline="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share one"):
        group_normalise(REWARDS, GROUPS[:3])
    with pytest.raises(ValueError, match="mode"):
        token_advantages("dense", *_process_inputs()[:6])  # type: ignore[arg-type]


# Process supervision, one group of two programs (both failed):
#   program A: lines with rewards [2, 0, 1]; program B: [1, (comment: no reward), 0].
#   The group's line rewards R = [2, 0, 1, 1, 0]: mean 0.8, sample std s = sqrt(2.8 / 4) = sqrt(0.7).
#   Normalised: A [1.2, -0.8, 0.2] / s, B [0.2, -, -0.8] / s.
#   Advantage of a line = sum over it and the later lines:
#       A: [0.6, -0.6, 0.2] / s;   B: [-0.6, -0.8, -0.8] / s   (B's comment line sums B's line 2)
#   Without the std (Dr. GRPO): A [0.6, -0.6, 0.2], B [-0.6, -0.8, -0.8].
S = math.sqrt(0.7)
LINE_REWARDS = _t([[2, 0, 1], [1, 9, 0]])  # 9: the comment's entry, which must be ignored
LINE_MASK = torch.tensor([[True, True, True], [True, False, True]])
# Tokens (shifted positions 0..9; the prompt predicts position 0-1): A's action tokens are
# 2..9 with lines ending at 3, 5, 8 and an EOS at 9; B's are 2..7 (truncated, no EOS), lines
# ending at 4, 5, 7, then padding.
LINE_END = torch.tensor([[3, 5, 8], [4, 5, 7]])
ACTION = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)


def _process_inputs() -> tuple:
    return (_t([0, 0]), LINE_REWARDS, LINE_MASK, LINE_END, torch.tensor([3, 3]), ACTION)


def test_process_line_advantages_by_hand() -> None:
    got = process_line_advantages(LINE_REWARDS, LINE_MASK, torch.tensor([3, 3]), eps=0.0)
    torch.testing.assert_close(got, _t([[0.6, -0.6, 0.2], [-0.6, -0.8, -0.8]]) / S, atol=1e-6, rtol=0)
    dr = process_line_advantages(LINE_REWARDS, LINE_MASK, torch.tensor([3, 3]), scale_by_std=False)
    torch.testing.assert_close(dr, _t([[0.6, -0.6, 0.2], [-0.6, -0.8, -0.8]]), atol=1e-6, rtol=0)


def test_process_normalises_within_each_group_only() -> None:
    """Adding a second group (its lines all equal) changes nothing in the first and gives 0."""
    rewards = torch.cat([LINE_REWARDS, _t([[5, 5, 0], [5, 0, 0]])])
    mask = torch.cat([LINE_MASK, torch.tensor([[True, True, False], [True, False, False]])])
    got = process_line_advantages(rewards, mask, torch.tensor([3, 3, 1, 1]), scale_by_std=False)
    torch.testing.assert_close(got[:2], _t([[0.6, -0.6, 0.2], [-0.6, -0.8, -0.8]]), atol=1e-6, rtol=0)
    assert torch.equal(got[2:], torch.zeros(2, 3))


def test_tokens_follow_the_line_end_rule() -> None:
    lines = _t([[0.6, -0.6, 0.2], [-0.6, -0.8, -0.8]])
    got = tokens_from_lines(lines, LINE_END, ACTION)
    want = _t([[0, 0, 0.6, 0.6, -0.6, -0.6, 0.2, 0.2, 0.2, 0],  # EOS (9) belongs to no line
               [0, 0, -0.6, -0.6, -0.6, -0.8, -0.8, -0.8, 0, 0]])  # fmt: skip
    torch.testing.assert_close(got, want)
    # -1-padded lines (a program with fewer lines) take no token
    short = tokens_from_lines(_t([[1.0, 7.0]]), torch.tensor([[3, -1]]), torch.ones(1, 6, dtype=torch.bool))
    torch.testing.assert_close(short, _t([[1, 1, 1, 1, 0, 0]]))
    # a line without tokens of its own (it repeats the previous end) takes no token
    empty = tokens_from_lines(_t([[1.0, 2.0, 3.0]]), torch.tensor([[2, 2, 4]]), torch.ones(1, 5, dtype=torch.bool))
    torch.testing.assert_close(empty, _t([[1, 1, 1, 3, 3]]))
    with pytest.raises(ValueError, match="must not decrease"):
        tokens_from_lines(lines, torch.tensor([[5, 3, 8], [4, 5, 7]]), ACTION)


def test_all_failed_group_gets_process_but_no_outcome_signal() -> None:
    """Every program of the group failed: outcome advantages are 0 on every token, process
    advantages are not (and equal the hand values on each line's tokens)."""
    outcome_in, *rest = _process_inputs()
    outcome = token_advantages("outcome", outcome_in, *rest)
    assert torch.equal(outcome.tokens, torch.zeros_like(outcome.tokens))
    assert torch.equal(outcome.outcome, torch.zeros(2))
    for mode in ("process", "outcome+process"):
        adv = token_advantages(mode, outcome_in, *rest, scale_by_std=False, process_coef=0.5)
        weight = 0.5 if mode == "outcome+process" else 1.0
        assert bool((adv.tokens[ACTION] != 0).any()), mode
        torch.testing.assert_close(adv.tokens[0, 2:4], torch.full((2,), 0.6 * weight))
        torch.testing.assert_close(adv.tokens[1, 5:8], torch.full((3,), -0.8 * weight))
        assert torch.equal(adv.tokens[~ACTION], torch.zeros(int((~ACTION).sum())))


def test_outcome_plus_process_adds_the_parts() -> None:
    """A passed, B failed: outcome (Dr. GRPO) ±0.5 on every token + 2 × the process part."""
    outcome_in = _t([1, 0])
    _, *rest = _process_inputs()
    adv = token_advantages("outcome+process", outcome_in, *rest, scale_by_std=False, process_coef=2.0)
    process = tokens_from_lines(_t([[0.6, -0.6, 0.2], [-0.6, -0.8, -0.8]]), LINE_END, ACTION)
    outcome = torch.where(ACTION, _t([[0.5], [-0.5]]).expand(2, 10), torch.zeros(2, 10))
    torch.testing.assert_close(adv.tokens, outcome + 2.0 * process)
    torch.testing.assert_close(adv.outcome, _t([0.5, -0.5]))


def test_kl_to_go_and_k3() -> None:
    kl = _t([[0.1, 0.2, 0.3, 9.0], [0.5, 9.0, 0.25, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 0]], dtype=torch.bool)
    torch.testing.assert_close(kl_to_go(kl, mask), _t([[0.6, 0.5, 0.3, 0], [0.75, 0, 0.25, 0]]))
    # k3 with π = 0.5, π_ref = 0.25: 0.5 - log 0.5 - 1; 0 where π = π_ref; gradient 1 - π_ref/π
    logp = torch.log(_t([0.5, 0.3])).requires_grad_()
    est = k3_kl(logp, torch.log(_t([0.25, 0.3])))
    torch.testing.assert_close(est, _t([0.5 - math.log(0.5) - 1, 0.0]))
    est.sum().backward()
    torch.testing.assert_close(logp.grad, _t([0.5, 0.0]))


def test_loss_aggregations_by_hand() -> None:
    x = _t([[1, 2, 3], [4, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    token = loss_weights(mask, "token", 5)
    assert (token.scale * masked_mean(x, token.weights)).item() == pytest.approx(2.5)  # 10 / 4 tokens
    seq = loss_weights(mask, "sequence", 5)
    assert (seq.scale * masked_mean(x, seq.weights)).item() == pytest.approx(3.0)  # mean of 2 and 4
    const = loss_weights(mask, "constant", 5)
    assert (const.scale * masked_mean(x, const.weights)).item() == pytest.approx(1.0)  # 10 / (2 x 5)
    with pytest.raises(ValueError, match="aggregation"):
        loss_weights(mask, "mean", 5)  # type: ignore[arg-type]
