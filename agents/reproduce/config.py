"""``ReproduceConfig``: every knob of ``codegym reproduce``, and the named presets.

The pipeline (see :mod:`agents.reproduce.pipeline`) trains an SFT policy, runs PPO arms and
critic-free GRPO arms from it, labels policy responses by binary search, trains a PRM and
compares the arms on held-out tasks by horizon bucket. A preset fixes the sizes; ``--set
key=value`` overrides any field, and the nested ``sft`` / ``ppo`` / ``grpo`` / ``prm`` dicts
override fields of :class:`agents.sft.SFTConfig`, :class:`agents.ppo.config.PPOConfig`,
:class:`agents.grpo.config.GRPOConfig` and :class:`codegym.prm.train.PRMTrainConfig` (the GRPO
arms take the ``ppo`` overrides of the fields GRPO shares with PPO, so budgets match).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codegym.config import Config
from codegym.tasks import SuiteConfig
from codegym.tasks.registry import nest_suite_fields

#: The arms: PPO settings that differ between them (every other setting is shared).
#: ``sparse``, ``dense``, ``value-init`` and ``dense+value-init`` are the four compared by the
#: method; ``paper`` uses the dense reward of the original write-up (PRM score / number of
#: lines, which changes the objective) with the PRM-initialised critic; ``oracle-dense`` uses
#: the closed shaping of ``dense`` with an exact potential (prefix completable by the
#: reference) instead of the learned PRM: what dense rewards give when the PRM is perfect.
ARMS: dict[str, dict[str, Any]] = {
    "sparse": {"dense_reward": "none", "value_init": "policy"},
    "dense": {"dense_reward": "delta", "value_init": "policy"},
    "value-init": {"dense_reward": "none", "value_init": "prm"},
    "dense+value-init": {"dense_reward": "delta", "value_init": "prm"},
    "paper": {"dense_reward": "paper", "value_init": "prm"},
    "oracle-dense": {"dense_reward": "delta", "dense_source": "oracle", "value_init": "policy"},
}

#: What each arm is, for tables and docs.
ARM_DESCRIPTIONS: dict[str, str] = {
    "sparse": "unit-test reward only; critic from the policy (zero head)",
    "dense": "+ closed PRM shaping Φ(m) − Φ(m−1), −Φ(last) at the end",
    "value-init": "unit-test reward only; critic = the PRM (plain load)",
    "dense+value-init": "closed PRM shaping + critic = the PRM",
    "paper": "PRM score / T per line (changes the objective) + critic = the PRM",
    "oracle-dense": "closed shaping with an exact potential (reference completion)",
}


#: The critic-free arms (:class:`agents.grpo.trainer.GRPOTrainer`): GRPOConfig settings that
#: differ between them. They share every setting GRPO has in common with PPO (tasks, sampling,
#: programs per iteration, iterations, learning rate) with the PPO arms, so each arm samples the
#: same number of programs from the same tasks (same seed) with the same token cap. ``grpo``:
#: outcome supervision (unit-test reward normalised within each task's group of samples);
#: ``grpo+process``: + DeepSeekMath's process supervision by the learned PRM; ``grpo+oracle-
#: process``: the same with the exact prefix oracle's line scores (the ceiling of a perfect PRM).
GRPO_ARMS: dict[str, dict[str, Any]] = {
    "grpo": {"advantage": "outcome"},
    "grpo+process": {"advantage": "outcome+process", "process_source": "prm"},
    "grpo+oracle-process": {"advantage": "outcome+process", "process_source": "oracle"},
}
ARM_DESCRIPTIONS.update({
    "grpo": "critic-free GRPO: unit-test reward normalised within each task's samples",
    "grpo+process": "GRPO + process advantages: PRM line deltas normalised in the group, summed to the end",
    "grpo+oracle-process": "GRPO + process advantages from the exact prefix oracle",
})  # fmt: skip


#: Fields an arm variant may not set: the arm itself and the run's seed define them.
_ARM_OWNED = frozenset({"seed", "dense_reward", "value_init", "dense_source", "advantage", "process_source",
                        "suite", "extra"})  # fmt: skip


def split_arm(arm: str) -> tuple[str, dict[str, Any]]:
    """An arm name's base arm and its overrides: ``BASE@FIELD=VALUE[@FIELD=VALUE…]`` is the
    arm ``BASE`` with PPO (or, for a GRPO base, GRPO) config fields set, e.g.
    ``dense@gae_lambda=0.8`` (a λ sweep). Values are read as JSON (numbers, booleans), else as
    strings.

    Raises:
        ValueError: an unknown base arm or a part without ``=``.
    """
    base, *parts = arm.split("@")
    if base not in ARMS and base not in GRPO_ARMS:
        raise ValueError(f"unknown arm {arm!r}: the part before '@' must be one of {[*ARMS, *GRPO_ARMS]}")
    overrides: dict[str, Any] = {}
    for part in parts:
        key, sep, text = part.partition("=")
        if not sep or not key:
            raise ValueError(f"arm {arm!r}: write each override as @FIELD=VALUE (e.g. dense@gae_lambda=0.8), "
                             f"got {part!r}")  # fmt: skip
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return base, overrides


def is_grpo_arm(arm: str) -> bool:
    """Whether ``arm`` (or its base, for a variant) is a critic-free GRPO arm."""
    return split_arm(arm)[0] in GRPO_ARMS


def arm_settings(arm: str) -> dict[str, Any]:
    """The config fields an arm sets: its base arm's settings, then its variant overrides."""
    base, overrides = split_arm(arm)
    return {**(GRPO_ARMS[base] if base in GRPO_ARMS else ARMS[base]), **overrides}


def arm_description(arm: str) -> str:
    """What ``arm`` is, for tables (a variant: its base's description and its overrides)."""
    base, overrides = split_arm(arm)
    extra = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return ARM_DESCRIPTIONS[base] + (f" ({extra})" if extra else "")


def twin_baseline(arm: str) -> str | None:
    """The PRM-free twin an arm is paired with besides ``sparse``: ``grpo`` for the other GRPO
    arms, and for a variant, its base family's baseline with the same overrides (``dense@
    gae_lambda=0.8`` pairs with ``sparse@gae_lambda=0.8``). None for a baseline itself."""
    base, _ = split_arm(arm)
    twin = ("grpo" if base in GRPO_ARMS else "sparse") + arm[len(base):]
    return None if twin == arm else twin


def _arm_needs_prm(arm: str) -> bool:
    spec = arm_settings(arm)
    if is_grpo_arm(arm):
        return spec["advantage"] != "outcome" and spec.get("process_source", "prm") == "prm"
    dense_prm = spec["dense_reward"] != "none" and spec.get("dense_source", "prm") == "prm"
    return dense_prm or spec["value_init"] == "prm"


@dataclass
class ReproduceConfig(Config):
    """Settings of ``codegym reproduce`` (build one with :func:`preset_config`)."""

    preset: str = "quick"
    """Name of the preset the other defaults came from (recorded; informational)."""
    seeds: int = 3
    """PPO seeds per arm (seeds 0 .. seeds-1; arm runs with the same seed draw the same tasks)."""
    arms: tuple[str, ...] = (*ARMS, *GRPO_ARMS)
    """Arms to run (names of :data:`ARMS` and :data:`GRPO_ARMS`, or variants of them with
    config fields set: ``ARM@FIELD=VALUE``, e.g. ``dense@gae_lambda=0.8``, see
    :func:`split_arm`); ``sparse`` is always run (it is the baseline and its seed-0 run
    provides the RL checkpoints whose responses are labeled)."""
    device: str = "cpu"
    """Torch device of every stage (``cpu``, ``cuda``, ``cuda:N``)."""
    jobs: int = 1
    """Stages run in parallel processes (PPO arms, labeling); on CPU each gets
    ``threads // jobs`` torch threads."""
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Torch threads in all (CPU; default: every core)."""

    # --- tasks -----------------------------------------------------------------------------
    suite: SuiteConfig = field(default_factory=lambda: SuiteConfig(min_lines=2, max_lines=8, seed=0))
    """Tasks of RL, labeling and evaluation: a suite with a horizon knob (``pipelines``), the
    fewest and most lines of a task (the horizon sweep: evaluation reports every bucket of
    ``buckets``; SFT trains on 1 to ``max_lines`` lines) and its seed (splits are disjoint
    whatever the seed). Each stage picks its own split."""
    buckets: str = "2-3,4-5,6-8"
    """Horizon buckets of the evaluation (``lo-hi`` ranges of a task's steps)."""

    # --- stages ----------------------------------------------------------------------------
    sft: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`agents.sft.SFTConfig` (model size, steps, task range, ...)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`agents.ppo.config.PPOConfig` shared by every arm (the GRPO arms
    take those of the fields :data:`agents.grpo.config.SHARED_WITH_PPO`)."""
    grpo: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`agents.grpo.config.GRPOConfig` shared by the GRPO arms (over the
    settings they take from ``ppo``), e.g. ``kl_coef``, ``scale_by_std``, ``process_coef``."""
    iterations: int = 60
    """PPO iterations of every arm (equal budgets)."""
    label_snapshots: tuple[int, ...] = (20, 40)
    """Iterations of the ``sparse`` seed-0 run whose policies also answer labeling prompts
    (besides the SFT policy): responses from RL checkpoints cover what later policies write."""
    label_responses: int = 400
    """Responses labeled per policy (SFT and each snapshot), from the train split."""
    heldout_responses: int = 150
    """Responses per policy labeled on the validation split: the PRM's held-out test set."""
    label_k: int = 8
    """Completions per prefix in the binary search (a prefix is correct if one passes)."""
    label_completer_steps: int = 0
    """0: each labeled policy completes its own prefixes (the method's original form). N > 0:
    the prefixes are completed by an SFT policy trained for N steps on the same data (the
    ``sft-labeler`` stage, beside the policy that RL starts from): measured against the exact
    oracle, a policy that rarely finishes a long program calls most correct prefixes wrong,
    and more completions do not help, while a stronger completer does (``docs/results.md``)."""
    prm: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`codegym.prm.train.PRMTrainConfig` (steps, lr, objective, ...)."""

    # --- evaluation ------------------------------------------------------------------------
    eval_tasks_per_bucket: int = 200
    """Held-out test tasks per horizon bucket (the same tasks for every arm: paired)."""
    eval_samples: int = 4
    """Programs sampled per task for sampled pass@1 (0: greedy only)."""
    bootstrap: int = 2000
    """Bootstrap resamples (over tasks and seeds) of the 95 % intervals."""

    # --- derived ---------------------------------------------------------------------------
    @property
    def seed_list(self) -> list[int]:
        """The PPO seeds: ``0 .. seeds - 1``."""
        return list(range(self.seeds))

    @property
    def arm_list(self) -> list[str]:
        """Arms in run order: ``sparse`` first (the label snapshots come from it), then the
        other PPO arms, then the GRPO arms."""
        order = [*ARMS, *GRPO_ARMS]
        rest = sorted(dict.fromkeys(a for a in self.arms if a != "sparse"),
                      key=lambda a: (order.index(split_arm(a)[0]), "@" in a))  # fmt: skip
        return ["sparse", *rest]

    @property
    def needs_prm(self) -> bool:
        """Whether any arm needs the learned PRM (then labeling and PRM training run)."""
        return any(_arm_needs_prm(a) for a in self.arm_list)

    @property
    def threads_per_job(self) -> int:
        """Torch threads of each parallel stage."""
        return max(1, self.threads // self.jobs)

    # --- validation / IO -------------------------------------------------------------------
    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """Configs that predate :class:`SuiteConfig` held ``min_steps``, ``max_steps`` and
        ``suite_seed`` at the top level: read as ``suite`` (with a note); configs that predate
        the GRPO arms have no ``grpo`` overrides (read as none)."""
        data = nest_suite_fields(cls, data, note=note)
        if "arms" in data and "grpo" not in data:
            data["grpo"] = {}
        return data

    def validate(self) -> ReproduceConfig:
        """Check every field; raise ``ValueError`` naming the field and the fix. Returns self."""
        self._check_arms()
        for name in ("seeds", "jobs", "threads", "iterations", "label_k", "eval_tasks_per_bucket",
                     "bootstrap"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("label_responses", "heldout_responses", "eval_samples", "label_completer_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self._check_suite()
        bad = [s for s in self.label_snapshots if not 1 <= s < self.iterations]
        if bad:
            raise ValueError(
                f"label_snapshots {bad} must be iterations in [1, iterations={self.iterations})"
            )
        if self.needs_prm and self.label_responses < 1:
            raise ValueError("arms that use the PRM need label_responses >= 1")
        from codegym.evaluation import parse_buckets

        lines = (self.suite.min_lines, self.suite.max_lines)
        for lo, hi in parse_buckets(self.buckets):
            if lo < lines[0] or hi > lines[1]:
                raise ValueError(
                    f"bucket {lo}-{hi} of buckets={self.buckets!r} lies outside the task range "
                    f"[{lines[0]}, {lines[1]}] (suite min_lines, max_lines)"
                )
        from agents.grpo.config import GRPOConfig
        from agents.ppo.config import PPOConfig
        from agents.sft import SFTConfig
        from codegym.prm.train import PRMTrainConfig

        owned = {"sft": {"out"}, "ppo": {"seed", "dense_reward", "value_init", "dense_source"},
                 "grpo": {"seed", "advantage", "process_source", "suite", "extra"},
                 "prm": {"data", "base", "out"}}  # set by the pipeline  # fmt: skip
        for name, value, target in (("sft", self.sft, SFTConfig), ("ppo", self.ppo, PPOConfig),
                                    ("grpo", self.grpo, GRPOConfig), ("prm", self.prm, PRMTrainConfig)):  # fmt: skip
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict of overrides, got {type(value).__name__}")
            fields = {f.name for f in dataclasses.fields(target)} - owned[name]
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ValueError(
                    f"unknown {name} overrides {unknown} (fields of {target.__name__}); valid: {sorted(fields)}"
                )
        return self

    def _check_arms(self) -> None:
        """Every arm names a known base; a variant's overrides are fields of its trainer's
        config that the arm does not own."""
        from agents.grpo.config import GRPOConfig
        from agents.ppo.config import PPOConfig

        for arm in self.arms:
            base, overrides = split_arm(arm)
            target = GRPOConfig if base in GRPO_ARMS else PPOConfig
            fields = {f.name for f in dataclasses.fields(target)} - _ARM_OWNED
            unknown = sorted(set(overrides) - fields)
            if unknown:
                raise ValueError(f"arm {arm!r}: {unknown} are not {target.__name__} fields an arm may set; "
                                 f"valid: {sorted(fields)}")  # fmt: skip

    def _check_suite(self) -> None:
        """A suite with a horizon knob, both bounds set (arms are compared by horizon bucket)."""
        if not self.suite.has_horizon:
            raise ValueError(f"reproduce compares arms by horizon: suite {self.suite.name!r} has no horizon "
                             "knob; use a suite such as pipelines")  # fmt: skip
        if self.suite.split is not None:
            raise ValueError(f"suite.split={self.suite.split!r}: reproduce's stages draw from their own "
                             "splits (train, validation, test); drop it")  # fmt: skip
        if self.suite.min_lines is None or self.suite.max_lines is None:
            raise ValueError("reproduce needs suite.min_lines and suite.max_lines (--min-task-lines, "
                             "--max-task-lines)")  # fmt: skip


#: Named presets: overrides of the :class:`ReproduceConfig` defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Plumbing only (< 3 min on 2 cores): a tiny model, a few iterations, a few tasks.
    "smoke": {
        "seeds": 1,
        "threads": 1,
        "suite": {"min_lines": 2, "max_lines": 4},
        "buckets": "2-3,4-4",
        "sft": {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 300, "train_tasks": 200,
                "steps": 30, "warmup_steps": 5, "decay_steps": 0, "eval_tasks": 8},
        "ppo": {"num_prompts": 2, "samples_per_prompt": 2, "num_minibatches": 1,
                "critic_warmup_iterations": 1, "max_new_tokens": 48, "max_line_tokens": 24},
        "iterations": 3,
        "label_snapshots": (2,),
        "label_responses": 4,
        "heldout_responses": 3,
        "label_k": 2,
        "label_completer_steps": 40,
        "prm": {"steps": 4, "batch_size": 4, "eval_every": 4, "checkpoint_every": 4,
                "warmup_steps": 1},
        "eval_tasks_per_bucket": 3,
        "eval_samples": 2,
        "bootstrap": 200,
    },
    # The CPU study (2 cores, <= 2 h with 3 seeds and --jobs 2). The SFT stop step leaves RL
    # room at every horizon (measured along one run on 1-8-step tasks, greedy pass@1 on 50
    # validation tasks per bucket 1-3 / 4-5 / 6-8: step 700: 82 / 26 / 0 %, 800: 90 / 36 /
    # 4 %, 900: 98 / 52 / 8 %).
    # The labels' completer is the same SFT trained 3x longer (2400 steps: greedy pass@1
    # 95 / 60 / 25 % at 2-3 / 4-5 / 6-8 steps, against the RL start's 90 / 36 / 4 %): recall of
    # correct prefixes 0.85 instead of 0.65 on held-out responses (0.60 instead of 0.13 at
    # 6-8 steps), with fewer executions (docs/results.md, label quality).
    # Its default arms are the six PPO arms (the GRPO arms would take it past 2 h; add them
    # with --arms).
    "quick": {
        "arms": tuple(ARMS),
        "jobs": 2,
        "sft": {"steps": 800, "decay_steps": 0, "train_tasks": 3000},
        "ppo": {"max_new_tokens": 160},
        "label_completer_steps": 2400,
    },
    # The regime the method is about: RL and evaluation on long tasks only (6-8 lines), where
    # the SFT start rarely succeeds (greedy pass@1 ~5 %, sampled ~1 %). SFT, labeler and
    # budgets as in quick; about 15 min per arm and seed on 2 cores (--jobs 2).
    "hard": {
        "arms": ("sparse", "dense", "oracle-dense", "grpo", "grpo+process", "grpo+oracle-process"),
        "jobs": 2,
        "suite": {"min_lines": 6, "max_lines": 8},
        "buckets": "6-6,7-7,8-8",
        "sft": {"steps": 800, "decay_steps": 0, "train_tasks": 3000},
        "ppo": {"max_new_tokens": 160},
        "label_completer_steps": 2400,
        "iterations": 70,
        "eval_tasks_per_bucket": 50,
        "eval_samples": 2,
    },
    # Sized for one GPU: a larger policy, more tasks, iterations and evaluation tasks.
    "full": {
        "device": "cuda",
        "seeds": 3,
        "suite": {"min_lines": 2, "max_lines": 12},
        "buckets": "2-4,5-8,9-12",
        "sft": {"n_layer": 6, "n_embd": 384, "n_head": 6, "vocab_size": 1024, "train_tasks": 20000,
                "steps": 4000, "batch_size": 64, "lr": 6e-4, "decay_steps": 0},
        "ppo": {"num_prompts": 64, "samples_per_prompt": 8, "num_minibatches": 8,
                "max_new_tokens": 256, "policy_lr": 2e-5, "critic_lr": 5e-5},
        "iterations": 300,
        "label_snapshots": (100, 200),
        "label_responses": 4000,
        "heldout_responses": 500,
        "prm": {"steps": 3000, "batch_size": 64, "lr": 3e-4},
        "eval_tasks_per_bucket": 500,
        "eval_samples": 8,
    },
}


def preset_config(name: str, **overrides: Any) -> ReproduceConfig:
    """The config of preset ``name`` with ``overrides`` (fields of :class:`ReproduceConfig`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
    data: dict[str, Any] = {"preset": name, **PRESETS[name]}
    for key, value in ReproduceConfig.upgrade(overrides).items():
        if key in ("suite", "sft", "ppo", "grpo", "prm") and isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return ReproduceConfig.from_dict(data)
