"""The PPO run's model card: metrics summary and every dense-reward setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.ppo.config import PPOConfig
from agents.ppo.modelcard import card_metrics, write_ppo_card


def test_card_metrics_first_last_and_tail_mean() -> None:
    rows = [{"iteration": i, "charts/pass_rate": i / 10, "losses/value": float("nan")} for i in range(1, 13)]
    got = card_metrics(rows)
    assert got["iterations logged"] == 12
    assert got["charts/pass_rate"] == "0.1 -> 1.2 (mean of last 10: 0.75)"
    assert "losses/value" not in got  # NaN only: nothing to show
    assert card_metrics([]) == {}


@pytest.mark.parametrize("dense", ["none", "delta", "delta_open", "paper"])
def test_card_for_every_dense_reward(tmp_path: Path, dense: str) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "charts/pass_rate": 0.5}) + "\n")
    card = write_ppo_card(tmp_path, PPOConfig(dense_reward=dense), tmp_path / "sft", tmp_path / "prm")
    text = card.read_text()
    assert f"dense reward: {dense}" in text and "0.5 -> 0.5" in text
    assert (tmp_path / "policy" / card.name).read_text() == text
