"""``PPOConfig``: every knob of the LLM-PPO trainer, with the CPU-calibrated defaults.

The defaults are the regime in which sparse PPO measurably learns on a 2-core CPU: a
2-layer x 128 GPT-2 SFT policy chosen early (greedy pass@1 around 30 %), RL on 2-4-step ``pipelines`` tasks, 16 prompts x 8
samples per iteration, policy lr 1e-4 with Adam betas (0.9, 0.95), gradient clipping at 1,
a frozen reference with beta_KL = 0.03, critic warm-up, 2 epochs x 4 minibatches of 32 and
at most 96 new tokens per program. Measured with ``bench/ppo_learning.py`` (20 min of PPO,
400 validation tasks, paired): greedy pass@1 0.280 -> 0.485, +20.5 points [95 % CI +16.2,
+24.8]; the earlier defaults (16 x 4 samples, lr 2e-5) gave +0.7 [-2.2, +3.7] on the same SFT
policy once PPO trained on the ids the policy drew (and +5.5 to +6.5 before that fix).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from codegym.config import Config, check_lora_fields, lora_kwargs
from codegym.tasks import SuiteConfig
from codegym.tasks.registry import nest_suite_fields
from codegym.training.tracking import check_report_to

DenseReward = Literal["none", "delta", "delta_open", "paper"]
DenseSource = Literal["prm", "oracle"]
PotentialScale = Literal["probability", "score"]
ValueInit = Literal["prm", "policy"]
CriticKind = Literal["separate", "shared"]
Precision = Literal["fp32", "bf16", "fp16"]

_DENSE = ("none", "delta", "delta_open", "paper")
_DENSE_SOURCE = ("prm", "oracle")
_POTENTIAL_SCALE = ("probability", "score")
_VALUE_INIT = ("prm", "policy")


@dataclass
class PPOConfig(Config):
    """Configuration of :class:`agents.ppo.trainer.PPOTrainer` (token-level PPO, line rewards).

    Derived values (``batch_size``, ``minibatch_size``) are properties. Build one from
    keyword arguments, from a dict (:meth:`from_dict`) or from a saved ``config.json``
    (:meth:`load`); :meth:`validate` (run on construction) raises ``ValueError`` naming any
    bad field.
    """

    # --- experiment -----------------------------------------------------------------------
    seed: int = 0
    """Seed of every generator the trainer owns (task sampling, token sampling, critic head)."""
    iterations: int = 300
    """Number of PPO iterations (one rollout batch + its update each)."""
    device: str = "cpu"
    """Torch device for policy, reference and critic (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    torch_threads: int | None = None
    """``torch.set_num_threads`` value on CPU; ``None`` leaves torch's default."""

    # --- tasks / environment --------------------------------------------------------------
    suite: SuiteConfig = field(default_factory=lambda: SuiteConfig(split="train", min_lines=2, max_lines=4, seed=0))
    """Rollout tasks: the suite, the split they are drawn from (evaluation uses
    ``validation``) and its knobs (``pipelines``: 2-4 lines, seed 0, the seed the SFT policy
    used)."""
    task_pool: int = 0
    """0: draw tasks from the whole split (a fresh stream); N > 0: draw only from the first N
    tasks of the split (a fixed training set, e.g. a benchmark's train tasks)."""
    sandbox: str = "local"
    """Sandbox backend name for ``make_sandbox`` (``"local"`` or ``"docker"``)."""
    sandbox_workers: int = 2
    """Parallel executions of the unit tests (sandbox workers, or Ray actors with a pool)."""
    sandbox_pool: str | None = None
    """``None``: the backend's own workers; ``"ray"``: spread executions over a Ray cluster
    (:class:`sandboxes.ray_pool.RaySandboxPool`, one sandbox per actor)."""
    max_lines: int = 16
    """Episode truncation in lines (the program still runs and gets its unit-test reward)."""

    # --- rewards --------------------------------------------------------------------------
    dense_reward: DenseReward = "none"
    """Per-line reward: ``"none"`` (sparse, unit tests only), ``"delta"`` (the env's closed
    potential-based reward Φ_m − Φ_{m−1}, with −Φ(last) on the final token, so every episode's
    dense return is the constant −Φ(empty) and the best policy is unchanged), ``"delta_open"``
    (the same without the closing term: gameable, for ablations) or ``"paper"`` (PRM score of
    line m × 1/T, T the number of lines, from the per-step ``prm_score`` in info; it changes
    the objective)."""
    dense_source: DenseSource = "prm"
    """Where the line scores of the dense reward come from: ``"prm"`` (the PRM checkpoint) or
    ``"oracle"`` (exact prefix correctness, +1/−1: the reference's remaining lines complete the
    prefix to a passing program, one sandboxed execution per line; a diagnostic for suites
    with one-step-per-line references such as ``pipelines``)."""
    potential_scale: PotentialScale = "probability"
    """Φ of ``delta`` shaping: ``"probability"`` (score in [−1, 1] read as the probability that
    the prefix is correct, (score + 1) / 2, the unit-test reward's scale: a wrong prefix is
    worth what a failed program is) or ``"score"`` (the raw score; with closed shaping a
    learner then gains +1 at once by ending an episode on a wrong prefix)."""
    dense_coef: float = 1.0
    """Multiplier of the dense line reward (the unit-test reward is not scaled)."""
    unit_test_reward: Literal["binary", "fraction"] = "binary"
    """Terminal reward: 1/0 on pass/fail (``"binary"``) or the fraction of tests passed."""

    value_bounds: bool = True
    """With closed shaping (``dense_reward="delta"``), clamp the critic's values to the range
    the shaped return can take before GAE: ``[min − Φ(s), max − Φ(s)]`` for a unit-test reward
    in ``[min, max]`` (``agents.ppo.gae.bound_values``). The critic cannot see what Φ measures
    and predicts below ``−Φ = 0`` on wrong prefixes; every "submit now" after a wrong line then
    got a positive advantage, programs shrank, the critic's error grew with them, and
    policies collapsed to empty programs (measured: ``docs/results.md``). ``False`` keeps the
    raw values (for ablations)."""

    # --- models ---------------------------------------------------------------------------
    value_init: ValueInit = "policy"
    """Critic start: ``"prm"`` = a plain load of the PRM checkpoint (backbone and ``score``
    head); ``"policy"`` = the policy's backbone with a fresh zero-initialised ``score`` head."""
    critic_warmup_iterations: int = 5
    """Iterations at the start in which only the critic is trained (policy frozen)."""
    critic: CriticKind = "separate"
    """``"separate"``: the critic is a model of its own (a PRM-architecture backbone + head,
    its own optimiser). ``"shared"``: a value head on the policy's backbone, read from the
    same forward pass as the log-probs (one model in memory instead of two); after the
    warm-up the value loss (× ``vf_coef``) trains the shared backbone with the policy loss,
    during the warm-up only the head trains. With ``value_init="prm"`` the head starts as the
    PRM's head read on the policy's hidden states (exact when the PRM kept the policy's
    backbone, a warm start otherwise; see :func:`agents.ppo.critic.build_value_head`)."""

    # --- precision and memory -------------------------------------------------------------
    dtype: Precision = "fp32"
    """Compute precision. ``"bf16"``/``"fp16"``: forward and backward passes under autocast,
    the trained weights and AdamW's state kept in fp32 (master weights, so a policy lr of
    1e-6 still moves every weight), frozen weights (the reference policy, the env's PRM, a
    LoRA base) stored in the compute dtype; fp16 also scales the loss."""
    lora_rank: int = 0
    """0: fine-tune every weight. r > 0: train rank-r LoRA adapters (peft, the ``lora``
    extra) on a frozen base, for the policy and a separate critic; the reference policy is
    the policy with its adapter switched off (no copy), and a critic that starts from the
    env's PRM shares that PRM's weights (the env scores with the critic's adapter off).
    Saved policies and critics are adapter directories, loadable wherever a model is."""
    lora_alpha: float = 0.0
    """LoRA scaling numerator (updates are scaled by alpha / rank); 0: ``2 * lora_rank``."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA adapters' input (0: none; the log-probs of the update then equal
    the rollout's)."""
    lora_targets: str = "all-linear"
    """Layers that get adapters: ``"all-linear"`` (every linear layer but the output head) or
    comma-separated module names (``"q_proj,v_proj"``)."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them
    (policy and critic updates; dropout stays off). Updates then encode prompts with every
    row (the shared-prompt saving needs the KV cache that checkpointing drops)."""
    logprob_chunk: int = 0
    """0: log-probs and entropy from the logits of every position (``[batch, seq, vocab]``).
    N > 0: from the hidden states of the generated positions only, the output head applied
    N positions at a time (recomputed in the backward pass): the same values, and memory
    that no longer grows with batch × vocabulary."""

    # --- sampling -------------------------------------------------------------------------
    num_prompts: int = 16
    """Distinct tasks per iteration."""
    samples_per_prompt: int = 8
    """Sampled programs per task per iteration (8: a task's samples then often differ in
    outcome, which is where the gradient comes from; 4 learned far less in the same time)."""
    max_new_tokens: int = 96
    """Most tokens generated per program (the episode is truncated and executed then)."""
    max_line_tokens: int = 48
    """Most tokens in one line before it is cut and sent to the env."""
    temperature: float = 1.0
    """Sampling temperature of rollouts (log-probs are those of the tempered distribution)."""
    chat_template: bool = True
    """Read each task through the policy tokenizer's chat template when it has one (an
    instruct model); ``--no-chat-template`` gives it the plain prompt."""

    # --- PPO ------------------------------------------------------------------------------
    gamma: float = 1.0
    """Discount per token."""
    gae_lambda: float = 0.95
    """GAE λ per token."""
    policy_lr: float = 1e-4
    """Adam learning rate of the policy (calibrated for the 2 x 128 default; 5e-4 suits a
    2 x 64 model, 1e-3 collapsed both)."""
    critic_lr: float = 1e-4
    """Adam learning rate of the critic."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """Adam (β1, β2) of both optimisers."""
    adam_eps: float = 1e-8
    """Adam ε of both optimisers."""
    weight_decay: float = 0.0
    """AdamW weight decay of both optimisers."""
    update_epochs: int = 2
    """Passes over the rollout batch per iteration."""
    num_minibatches: int = 4
    """Minibatches per epoch (``minibatch_size = batch_size // num_minibatches``)."""
    clip_coef: float = 0.2
    """PPO ratio clip ε of the policy loss."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout values (CleanRL's ``clip_vloss``)."""
    vf_clip_coef: float = 0.2
    """Clip range of the value prediction when ``clip_vloss`` is on."""
    vf_coef: float = 0.5
    """Weight of the value loss (the critic has its own optimiser; kept for logging parity)."""
    shared_prompt: bool = True
    """Encode each prompt once per group of samples in scoring and updates (the same per-token
    results as encoding every sequence whole, in far fewer tokens), with minibatches made of
    whole prompt groups. Single-process only (data-parallel runs encode sequences whole)."""
    ent_coef: float = 0.0
    """Entropy bonus weight (the entropy is always logged)."""
    norm_adv: bool = True
    """Whiten advantages over the valid tokens of each minibatch."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of policy and critic."""
    kl_coef: float = 0.03
    """Initial per-token KL penalty β to the frozen reference policy."""
    adaptive_kl: bool = False
    """Adapt β towards ``target_kl`` (Ziegler et al. 2019 proportional controller)."""
    target_kl: float = 1.0
    """Target KL per sequence (nats) of the adaptive controller."""
    kl_horizon: int = 10000
    """Horizon (in sequences) of the adaptive controller."""

    # --- logging / checkpoints ------------------------------------------------------------
    checkpoint_every: int = 1
    """Save a resumable checkpoint every this many iterations (and at the end)."""
    log_every: int = 1
    """Write a metrics row every this many iterations."""
    report_to: str = "none"
    """Also log the metrics rows to ``"tensorboard"`` (``OUT/tensorboard``, same names), or
    ``"none"``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form facts recorded with the run (e.g. the policy/PRM directories)."""

    # --- derived --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Episodes (programs) per iteration: ``num_prompts * samples_per_prompt``."""
        return self.num_prompts * self.samples_per_prompt

    @property
    def minibatch_size(self) -> int:
        """Episodes per minibatch: ``batch_size // num_minibatches``."""
        return self.batch_size // self.num_minibatches

    @property
    def lora(self) -> dict[str, Any] | None:
        """Keyword arguments of :func:`codegym.adapters.add_lora`, or None (no LoRA)."""
        return lora_kwargs(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets, self.seed)

    @property
    def generated_only(self) -> bool:
        """Log-probs (and shared values) from hidden states on generated positions only."""
        return self.logprob_chunk > 0 or self.critic == "shared"

    @property
    def uses_prm(self) -> bool:
        """Whether a PRM checkpoint is needed (PRM dense reward or PRM-initialised critic)."""
        prm_dense = self.dense_reward != "none" and self.dense_source == "prm"
        return prm_dense or self.value_init == "prm"

    # --- validation / IO ------------------------------------------------------------------
    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Configs that predate :class:`SuiteConfig` held ``suite``, ``split``, ``min_steps``,
        ``max_steps`` and ``suite_seed`` at the top level: read as ``suite`` (with a note)."""
        return nest_suite_fields(cls, data, note=note)

    def validate(self) -> PPOConfig:
        """Check every field; raise ``ValueError`` naming the field and the fix. Returns self.

        Runs on construction; call it again after changing a field.
        """
        self._check_choices()
        self._check_ranges()
        self._check_schedule()
        return self

    def _check_choices(self) -> None:
        """Fields that take one of a few names."""
        choices = {"dense_reward": _DENSE, "dense_source": _DENSE_SOURCE,
                   "potential_scale": _POTENTIAL_SCALE, "value_init": _VALUE_INIT,
                   "critic": ("separate", "shared"), "dtype": ("fp32", "bf16", "fp16"),
                   "unit_test_reward": ("binary", "fraction"), "sandbox_pool": (None, "ray")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        check_report_to(self.report_to)

    def _check_ranges(self) -> None:
        """Counts, rates and coefficients within their ranges."""
        positive = (
            "iterations", "num_prompts", "samples_per_prompt", "max_new_tokens",
            "max_line_tokens", "update_epochs", "num_minibatches", "max_lines",
            "checkpoint_every", "log_every", "sandbox_workers",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("policy_lr", "critic_lr", "temperature", "clip_coef", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("kl_coef", "ent_coef", "vf_coef", "vf_clip_coef", "weight_decay", "task_pool",
                     "critic_warmup_iterations", "logprob_chunk"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}"
                                 + (" (0 = whole split)" if name == "task_pool" else ""))
        check_lora_fields(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets)
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")

    def _check_schedule(self) -> None:
        """Warm-up and minibatches that fit the run."""
        if self.critic_warmup_iterations >= self.iterations:
            raise ValueError(
                f"critic_warmup_iterations={self.critic_warmup_iterations} >= iterations="
                f"{self.iterations}: the first {self.critic_warmup_iterations} iterations train "
                "only the critic, so the policy would never be updated and the run would save "
                f"the starting policy; raise --iterations above {self.critic_warmup_iterations} "
                "or lower the warm-up (--set critic_warmup_iterations=0)"
            )
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide batch_size="
                f"{self.batch_size} (num_prompts * samples_per_prompt)"
            )
