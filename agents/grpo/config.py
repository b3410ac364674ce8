"""``GRPOConfig``: every knob of the critic-free trainer, each with the method it comes from.

The methods (cited per field):

* **GRPO** — Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in
  Open Language Models" (§4.1): no critic; each prompt's ``G`` samples form a group and a
  sample's advantage is its reward normalised by the group's mean and std (*outcome
  supervision*) or, with a process reward model, the sum of the group-normalised rewards of
  the steps from the token's step on (*process supervision*, §4.1.3); the clipped PPO
  surrogate; a KL to the reference policy added to the loss with the unbiased estimator
  ``π_ref/π − log(π_ref/π) − 1``.
* **Dr. GRPO** — Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical
  Perspective": drop the division by the group's std and the per-sequence length
  normalisation, both of which bias the gradient (towards easy/hard prompts, and towards
  long wrong answers).
* **RLOO** — Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization
  for Learning from Human Feedback in LLMs": the baseline of a sample is the mean reward of
  the *other* samples of its prompt (leave-one-out).

The fields shared with :class:`agents.ppo.config.PPOConfig` (:data:`SHARED_WITH_PPO`: tasks,
sandbox, sampling and optimiser settings) mean the same and default to the same values, so a
GRPO run and a PPO run with the same settings sample the same number of programs from the same
tasks per iteration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.grpo.advantages import ADVANTAGE_MODES, BASELINES, AdvantageMode, Baseline
from codegym.config import Config
from codegym.tasks import SuiteConfig
from codegym.tasks.registry import nest_suite_fields
from codegym.training.tracking import check_report_to

ProcessReward = Literal["delta", "score"]
ProcessSource = Literal["prm", "oracle"]
KLPenalty = Literal["loss", "reward"]
LossAggregation = Literal["token", "sequence", "constant"]

#: Fields of :class:`GRPOConfig` that mean the same as :class:`agents.ppo.config.PPOConfig`'s
#: (``codegym reproduce`` gives the GRPO arms the PPO overrides of these fields: equal budgets).
SHARED_WITH_PPO = (
    "seed", "iterations", "device", "torch_threads", "suite", "task_pool", "sandbox",
    "sandbox_workers", "sandbox_pool", "max_lines", "potential_scale", "unit_test_reward",
    "num_prompts", "samples_per_prompt", "max_new_tokens", "max_line_tokens", "temperature",
    "policy_lr", "adam_betas", "adam_eps", "weight_decay", "update_epochs", "num_minibatches",
    "clip_coef", "shared_prompt", "ent_coef", "max_grad_norm", "checkpoint_every", "log_every",
    "report_to",
)  # fmt: skip


@dataclass
class GRPOConfig(Config):
    """Configuration of :class:`agents.grpo.trainer.GRPOTrainer` (group-relative, no critic).

    Build one from keyword arguments, from a dict (:meth:`from_dict`) or from a saved
    ``config.json`` (:meth:`load`); :meth:`validate` (run on construction) raises
    ``ValueError`` naming any bad field.
    """

    # --- experiment -----------------------------------------------------------------------
    seed: int = 0
    """Seed of every generator the trainer owns (task draws, token sampling, minibatch order)."""
    iterations: int = 300
    """Iterations (one rollout of ``num_prompts`` groups + its update each)."""
    device: str = "cpu"
    """Torch device of the policy and the reference (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    torch_threads: int | None = None
    """``torch.set_num_threads`` value on CPU; ``None`` leaves torch's default."""

    # --- tasks / environment --------------------------------------------------------------
    suite: SuiteConfig = field(default_factory=lambda: SuiteConfig(split="train", min_lines=2, max_lines=4, seed=0))
    """Rollout tasks: the suite, its split and knobs (as PPO's default: ``pipelines``, 2-4
    lines, seed 0)."""
    task_pool: int = 0
    """0: draw tasks from the whole split; N > 0: only from its first N tasks."""
    sandbox: str = "local"
    """Sandbox backend name for ``make_sandbox`` (``"local"`` or ``"docker"``)."""
    sandbox_workers: int = 2
    """Parallel executions of the unit tests (and of the oracle's completions)."""
    sandbox_pool: str | None = None
    """``None``: the backend's own workers; ``"ray"``: a Ray pool of sandboxes."""
    max_lines: int = 16
    """Episode truncation in lines (the program still runs and gets its unit-test reward)."""

    # --- advantages -----------------------------------------------------------------------
    advantage: AdvantageMode = "outcome"
    """What a token's advantage is made of (GRPO, DeepSeekMath §4.1.2-4.1.3): ``"outcome"``
    (the program's unit-test reward normalised within its group; outcome supervision),
    ``"process"`` (every line's reward normalised by the mean and std of all line rewards of
    the group, a token's advantage = the sum over its line and the later lines; process
    supervision) or ``"outcome+process"`` (their sum, the process part × ``process_coef``)."""
    baseline: Baseline = "mean"
    """What a reward is compared with: ``"mean"`` (the group's mean, GRPO) or
    ``"leave-one-out"`` (the mean of the group's other members, RLOO). Applies to the outcome
    rewards and to the line rewards."""
    scale_by_std: bool = True
    """Divide the centred rewards by the group's standard deviation (GRPO); ``False`` keeps
    them unscaled (Dr. GRPO's unbiased form; RLOO does not scale either)."""
    adv_eps: float = 1e-4
    """Added to the group's std before dividing (GRPO; TRL's default)."""
    process_source: ProcessSource = "prm"
    """Where line rewards come from: ``"prm"`` (the PRM checkpoint, batched in the env) or
    ``"oracle"`` (exact prefix correctness, +1/−1: the reference's remaining lines complete the
    prefix to a passing program, one cached execution per line; the ceiling of process
    supervision, ``oracle-process``, on suites with one-step-per-line references such as
    ``pipelines``)."""
    process_reward: ProcessReward = "delta"
    """A line's reward in process supervision: ``"delta"`` (the env's closed-shaping delta
    Φ(prefix_m) − Φ(prefix_{m−1}), Φ on ``potential_scale``; what the line changed) or
    ``"score"`` (the raw line score in [−1, 1], as DeepSeekMath's PRM reward per step). The
    closing term of closed shaping is not a line's reward and is not used."""
    potential_scale: Literal["probability", "score"] = "probability"
    """Φ of the ``"delta"`` line reward: ``"probability"`` ((score + 1) / 2) or ``"score"``
    (the raw score), as PPO's dense reward."""
    process_coef: float = 1.0
    """Weight of the process advantage in ``"outcome+process"`` (the outcome part has
    weight 1)."""
    unit_test_reward: Literal["binary", "fraction"] = "binary"
    """Outcome reward: 1/0 on pass/fail (``"binary"``) or the fraction of tests passed."""

    # --- sampling -------------------------------------------------------------------------
    num_prompts: int = 16
    """Groups (distinct tasks) per iteration."""
    samples_per_prompt: int = 8
    """Programs sampled per task: the group size G (GRPO; >= 2, a group of one has nothing to
    compare with)."""
    max_new_tokens: int = 96
    """Most tokens generated per program (the episode is truncated and executed then)."""
    max_line_tokens: int = 48
    """Most tokens in one line before it is cut and sent to the env."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (log-probs are those of the tempered distribution)."""

    # --- optimisation ---------------------------------------------------------------------
    policy_lr: float = 1e-4
    """AdamW learning rate of the policy (PPO's calibrated default)."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW (β1, β2)."""
    adam_eps: float = 1e-8
    """AdamW ε."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    update_epochs: int = 2
    """Passes over the rollout batch per iteration (GRPO's μ; PPO's default)."""
    num_minibatches: int = 4
    """Minibatches per epoch (whole groups each when ``shared_prompt`` is on)."""
    clip_coef: float = 0.2
    """Ratio clip ε of the surrogate (PPO's, kept by GRPO)."""
    loss_aggregation: LossAggregation = "token"
    """How token losses become the minibatch's loss: ``"token"`` (mean over every token of the
    minibatch, as PPO's loss; DAPO's token-level form), ``"sequence"`` (mean per program, then
    over programs: GRPO's ``1/|o_i|``, which favours long wrong programs) or ``"constant"``
    (sum over tokens / (programs × ``max_new_tokens``): Dr. GRPO)."""
    norm_adv: bool = False
    """Also whiten advantages over each minibatch's tokens (PPO's ``norm_adv``; off: the group
    normalisation is the only one, as in GRPO)."""
    shared_prompt: bool = True
    """Encode each prompt once per group in scoring and updates (single process only)."""
    ent_coef: float = 0.0
    """Entropy bonus weight (the entropy is always logged)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of the policy."""
    kl_coef: float = 0.04
    """β of the KL to the frozen reference (the starting policy): DeepSeekMath's 0.04."""
    kl_penalty: KLPenalty = "loss"
    """Where the KL acts: ``"loss"`` (GRPO: β × the per-token estimator
    ``π_ref/π − log(π_ref/π) − 1`` added to the loss, outside the advantage) or ``"reward"``
    (PPO's placement: −β × (log π_old − log π_ref) joins every drawn token's reward, so each
    token's advantage gains −β × the KL still to come in its program, unnormalised)."""

    # --- logging / checkpoints ------------------------------------------------------------
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many iterations (and at the end)."""
    log_every: int = 1
    """Write a metrics row every this many iterations."""
    report_to: str = "none"
    """Also log the metrics rows to ``"tensorboard"`` (``OUT/tensorboard``), or ``"none"``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts recorded with the run (e.g. the policy/PRM directories)."""

    # --- derived --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Programs per iteration: ``num_prompts * samples_per_prompt``."""
        return self.num_prompts * self.samples_per_prompt

    @property
    def uses_process(self) -> bool:
        """Whether line rewards are needed (``process`` or ``outcome+process``)."""
        return self.advantage != "outcome"

    @property
    def uses_prm(self) -> bool:
        """Whether a PRM checkpoint is needed (process advantages from the PRM)."""
        return self.uses_process and self.process_source == "prm"

    @property
    def env_reward_mode(self) -> str:
        """The env's ``reward_mode``: the line rewards process supervision reads, or none."""
        return self.process_reward if self.uses_process else "none"

    # --- validation / IO ------------------------------------------------------------------
    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Flat ``suite``/``split``/``min_steps``/``max_steps`` fields read as ``suite``."""
        return nest_suite_fields(cls, data, note=note)

    def validate(self) -> GRPOConfig:
        """Check every field; raise ``ValueError`` naming the field and the fix. Returns self."""
        choices = {"advantage": ADVANTAGE_MODES, "baseline": BASELINES, "process_source": ("prm", "oracle"),
                   "process_reward": ("delta", "score"), "potential_scale": ("probability", "score"),
                   "unit_test_reward": ("binary", "fraction"), "kl_penalty": ("loss", "reward"),
                   "loss_aggregation": ("token", "sequence", "constant"), "sandbox_pool": (None, "ray")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        check_report_to(self.report_to)
        positive = ("iterations", "num_prompts", "max_new_tokens", "max_line_tokens", "update_epochs",
                    "num_minibatches", "max_lines", "checkpoint_every", "log_every", "sandbox_workers")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.samples_per_prompt, int) or self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be an integer >= 2 (the group size: a group of one has "
                             f"nothing to compare with), got {self.samples_per_prompt!r}")  # fmt: skip
        for name in ("policy_lr", "temperature", "clip_coef", "max_grad_norm", "adv_eps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("kl_coef", "ent_coef", "weight_decay", "task_pool", "process_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"num_minibatches={self.num_minibatches} must divide batch_size={self.batch_size} "
                             "(num_prompts * samples_per_prompt)")  # fmt: skip
        return self


__all__ = ["SHARED_WITH_PPO", "GRPOConfig"]
