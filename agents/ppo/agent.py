"""``ppo``: the agent a PPO run produced (``codegym eval --agent ppo --model RUN_DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.hf import HFAgent


def resolve_policy_dir(path: str | Path) -> Path:
    """The policy checkpoint inside a PPO run directory (or ``path`` itself).

    Looks for ``RUN/policy`` (final), then ``RUN/checkpoint/policy`` (latest checkpoint of an
    unfinished run), then ``RUN`` as a plain ``save_pretrained`` directory; each may be a
    peft LoRA adapter directory (a run with ``lora_rank``), which loads as base + adapter.
    """
    root = Path(path)
    for candidate in (root / "policy", root / "checkpoint" / "policy", root):
        if (candidate / "config.json").is_file() or (candidate / "adapter_config.json").is_file():
            return candidate
    raise ValueError(
        f"{str(root)!r} holds no policy: pass a `codegym train` --out directory or a "
        "save_pretrained model directory"
    )


class PPOAgent(HFAgent):
    """Samples lines from a PPO-trained policy (KV-cached, like :class:`agents.hf.HFAgent`).

    Args:
        model: A ``codegym train`` run directory (uses ``RUN/policy``), a checkpoint
            directory, or a loaded model (then pass ``tokenizer``).
        **kwargs: As for :class:`agents.hf.HFAgent` (``greedy``, ``temperature``, ...).
    """

    name = "ppo"

    def __init__(self, model: Any = None, **kwargs: Any) -> None:
        if isinstance(model, (str, Path)):
            model = str(resolve_policy_dir(model))
        super().__init__(model=model, **kwargs)
