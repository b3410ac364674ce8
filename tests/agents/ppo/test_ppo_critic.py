"""The critic: PRM architecture; value_init="prm" is a plain load, "policy" a fresh head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.ppo.critic import build_critic, critic_values, save_critic


def test_prm_init_equals_prm_parameters_exactly(tiny_prm_dir: Path) -> None:
    from codegym.prm.model import ProcessRewardModel

    prm = ProcessRewardModel.from_pretrained(tiny_prm_dir)
    critic = build_critic("prm", tiny_prm_dir, None)
    want = prm.state_dict()
    got = critic.prm.state_dict()
    assert set(got) == set(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name
    assert critic.prm.score.bias.detach().item() == pytest.approx(0.25)
    # Values are the PRM's scores at every token, read as probabilities: (score + 1) / 2.
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    raw, _ = prm(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(critic_values(critic, ids, mask), (prm.to_score(raw) + 1) / 2)


def test_policy_init_uses_policy_backbone_and_zero_head(tiny_policy_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    critic = build_critic("policy", None, tiny_policy_dir)
    backbone = critic.prm.backbone.state_dict()
    for name, tensor in policy.transformer.state_dict().items():
        assert torch.equal(backbone[name], tensor), name
    assert torch.count_nonzero(critic.prm.score.weight) == 0
    values = critic_values(critic, torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long))
    assert torch.all(values == 0)


def test_save_and_reload_round_trip(tiny_prm_dir: Path, tmp_path: Path) -> None:
    critic = build_critic("prm", tiny_prm_dir, None)
    with torch.no_grad():
        critic.prm.score.bias.add_(1.0)
    save_critic(critic, tmp_path / "critic")
    again = build_critic("checkpoint", tmp_path / "critic", None)
    for (n1, p1), (n2, p2) in zip(critic.named_parameters(), again.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    ids, mask = torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long)
    torch.testing.assert_close(critic_values(again, ids, mask), critic_values(critic, ids, mask))


def test_bad_value_init_and_missing_dirs_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="value_init"):
        build_critic("oracle", None, None)
    with pytest.raises(ValueError, match="PRM"):
        build_critic("prm", None, None)
    with pytest.raises(ValueError, match="config.json"):
        build_critic("prm", tmp_path, None)
