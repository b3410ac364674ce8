"""``codegym reproduce``: the method's ablation in miniature, end to end, on your machine.

SFT policy → PPO arms (sparse, dense, value-init, dense+value-init, the 1/T reward, an oracle
dense reward) and critic-free GRPO arms (outcome, + PRM process advantages, + oracle process
advantages) → binary-search labels from the SFT policy and RL checkpoints → a PRM →
held-out pass@1 by horizon bucket with paired 95 % intervals over tasks and seeds.
"""

from agents.reproduce.config import ARMS, GRPO_ARMS, PRESETS, ReproduceConfig, preset_config
from agents.reproduce.pipeline import Layout, plan, run_pipeline
from agents.reproduce.report import make_report

__all__ = ["ARMS", "GRPO_ARMS", "PRESETS", "Layout", "ReproduceConfig", "make_report", "plan", "preset_config", "run_pipeline"]
