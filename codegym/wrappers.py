"""Discrete-action ``CodePRM-v0`` for Stable-Baselines3 and any standard RL library.

``CodePRM-v0`` acts and observes in text (``Text`` spaces), which Stable-Baselines3 cannot
take. :class:`CandidateLineWrapper` turns it into a standard env: at every step a
*proposer* offers ``K`` candidate lines, the action is the index of one of them (or a last,
fixed action: submit), and the observation is a fixed-size ``float32`` vector of features of
the state and of each candidate. Rewards are the wrapped env's, unchanged: the dense PRM
reward of the chosen line and the unit-test reward at the end.

Proposers (anything with the :class:`Proposer` interface):

* :class:`PipelinesTableProposer` — for the ``pipelines`` suite: candidate lines built from
  the suite's operation table (the task's next step, its neighbours — the step-tracking
  mistakes small policies make — a parameter off by one, other operations). Each
  candidate's features say which docstring step it implements relative to the next one, so
  the agent's problem is credit assignment over a long horizon (which choice, many steps
  back, broke the program), cheap enough for CPU experiments.
* :class:`LMProposer` — any causal-LM directory: ``K`` sampled next lines, with their
  log-probability, frequency among the samples and length; the state is the LM's hidden
  state at the end of the code so far (a frozen-LM embedding).

Use it with SB3 (``gym.make`` of the registered id works too)::

    import gymnasium as gym, codegym
    from stable_baselines3 import PPO
    env = gym.make("CodePRMDiscrete-v0", suite="pipelines", proposer="pipelines",
                   suite_kwargs={"min_steps": 2, "max_steps": 4}, prm="runs/prm")
    model = PPO("MlpPolicy", env).learn(20_000)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from codegym.constants import SUBMIT
from codegym.tasks.base import Task


class Proposal(NamedTuple):
    """What a proposer offers at one step.

    Attributes:
        lines: ``K`` candidate lines (no newline; :data:`codegym.SUBMIT` allowed).
        features: [K, F] float32 features, one row per candidate.
        context: [C] float32 features of the state.
    """

    lines: list[str]
    features: np.ndarray
    context: np.ndarray


@runtime_checkable
class Proposer(Protocol):
    """Proposes ``num_candidates`` lines per step, with fixed-size features.

    Attributes:
        num_candidates: ``K``.
        candidate_dim: ``F``, features per candidate.
        context_dim: ``C``, features of the state.
        bounds: ``(low, high)`` that every feature lies in (the observation space's bounds).
    """

    num_candidates: int
    candidate_dim: int
    context_dim: int
    bounds: tuple[float, float]

    def propose(self, task: Task, lines: Sequence[str], rng: np.random.Generator) -> Proposal:
        """Candidates for the next line of ``task`` after ``lines`` (all randomness from ``rng``)."""
        ...


class CandidateLineWrapper(gym.Wrapper):
    """``CodePRM-v0`` with a discrete action space and a numeric observation.

    ## Description

    At each step the proposer offers ``K`` candidate lines; the agent picks one by index, or
    submits. The chosen line is sent to the wrapped env unchanged, so the episode, the
    sandboxed unit tests and the rewards are those of ``CodePRM-v0``.

    ## Action Space

    ``Discrete(K + 1)``: ``a < K`` writes candidate ``a``; ``a == K`` sends
    :data:`codegym.SUBMIT`. A candidate the env would reject (a line break, a character
    outside its charset, too long) is replaced by submit when it is proposed, and counted in
    ``info["invalid_candidates"]``.

    ## Observation Space

    ``Box(low, high, (1 + C + K * (F + 1),), float32)`` (``proposer.bounds``, [0, 1] for the
    flags): the fraction of ``max_lines`` written, the proposer's ``C`` context features, then per candidate its ``F`` features and
    a flag (1: a real line, 0: replaced by submit). After the last step it is all zeros but
    the first entry.

    ## Rewards

    Those of the wrapped env: the dense PRM reward of the chosen line (``reward_mode``) and,
    on the last step, the unit-test reward.

    ## Starting State

    The wrapped env's ``reset``; the first proposal is made for the empty program.

    ## Episode End

    As the wrapped env: submit (termination) or ``max_lines`` lines (truncation; the program
    is still executed).

    ## Arguments

    | Argument   | Meaning                                                           |
    |------------|-------------------------------------------------------------------|
    | ``env``    | a ``CodePRM-v0`` env (``gym.make`` or ``CodePRMEnv``)              |
    | ``proposer`` | a :class:`Proposer`                                             |

    ``info`` adds ``candidates`` (the lines offered for the *next* step), ``line`` (the line
    just written, or ``SUBMIT``) and ``invalid_candidates``.

    Rendering: the wrapped env's ``"ansi"``/``"human"`` modes, plus ``"rgb_array"`` (the
    ANSI text drawn as an image, for SB3's ``make_vec_env``, which asks for it by default,
    and video recorders) when built by :func:`make_discrete_env` with that mode.

    ## Version History

    * v0: initial version, ``CodePRMDiscrete-v0`` (its version follows ``CodePRM``'s: it wraps
      ``CodePRM-v0``, whose ``delta`` shaping is closed).
    """

    metadata = {"render_modes": ["ansi", "human", "rgb_array"], "render_fps": 4}

    def __init__(self, env: gym.Env, proposer: Proposer, rgb_array: bool = False) -> None:
        super().__init__(env)
        if rgb_array and env.render_mode != "ansi":
            raise ValueError("rgb_array rendering needs the wrapped env in render_mode='ansi'")
        self._rgb = bool(rgb_array)
        for name in ("num_candidates", "candidate_dim", "context_dim"):
            value = getattr(proposer, name, None)
            if not isinstance(value, int) or value < (1 if name == "num_candidates" else 0):
                raise ValueError(f"proposer.{name} must be a non-negative int (K >= 1), got {value!r}")
        lo, hi = getattr(proposer, "bounds", (-np.inf, np.inf))
        if not lo < hi:
            raise ValueError(f"proposer.bounds must be (low, high) with low < high, got {(lo, hi)}")
        self.proposer = proposer
        self.k = int(proposer.num_candidates)
        C, F = proposer.context_dim, proposer.candidate_dim
        self.action_space = spaces.Discrete(self.k + 1)
        self.obs_dim = 1 + C + self.k * (F + 1)
        low = np.full(self.obs_dim, lo, dtype=np.float32)
        high = np.full(self.obs_dim, hi, dtype=np.float32)
        flags = np.r_[0, 1 + C + F + (F + 1) * np.arange(self.k)]  # written fraction, valid flags
        low[flags], high[flags] = min(lo, 0.0), max(hi, 1.0)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._rng = np.random.default_rng()
        self._proposal: Proposal | None = None
        self._valid = np.zeros(self.k, dtype=bool)
        self._invalid = 0

    @property
    def _core(self) -> Any:
        return self.env.unwrapped

    @property
    def proposal(self) -> Proposal | None:
        """The candidates offered for the next step (``None`` before reset and after the end)."""
        return self._proposal

    @property
    def render_mode(self) -> str | None:  # type: ignore[override]
        return "rgb_array" if self._rgb else self.env.render_mode

    def render(self) -> Any:
        if not self._rgb:
            return self.env.render()
        from codegym.reporting.plotting import text_image

        return text_image(self.env.render() or "")

    def _propose(self) -> np.ndarray:
        core = self._core
        prop = self.proposer.propose(core.task, list(core.lines), self._rng)
        if len(prop.lines) != self.k:
            raise ValueError(f"proposer returned {len(prop.lines)} lines, expected {self.k}")
        feats = np.asarray(prop.features, dtype=np.float32).reshape(self.k, self.proposer.candidate_dim)
        ctx = np.asarray(prop.context, dtype=np.float32).reshape(self.proposer.context_dim)
        lines = list(prop.lines)
        valid = np.ones(self.k, dtype=bool)
        space = core.action_space
        for i, line in enumerate(lines):
            if line != SUBMIT and not (isinstance(line, str) and "\n" not in line and "\r" not in line
                                       and space.contains(line)):  # fmt: skip
                lines[i] = SUBMIT
                valid[i] = False
                self._invalid += 1
        self._proposal = Proposal(lines, feats, ctx)
        self._valid = valid
        head = np.array([len(core.lines) / max(1, core.max_lines)], dtype=np.float32)
        per = np.concatenate([feats, valid[:, None].astype(np.float32)], axis=1)  # [K, F + 1]
        return np.concatenate([head, ctx, per.reshape(-1)]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        _, info = self.env.reset(seed=seed, options=options)
        self._invalid = 0
        obs = self._propose()
        info = {**info, "candidates": list(self._proposal.lines), "invalid_candidates": self._invalid}
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._proposal is None:
            raise RuntimeError("step() before reset()")
        a = int(action)
        if not 0 <= a <= self.k:
            raise ValueError(f"action must be in [0, {self.k}] (K candidates + submit), got {action!r}")
        line = SUBMIT if a == self.k else self._proposal.lines[a]
        _, reward, terminated, truncated, info = self.env.step(line)
        info = {**info, "line": line, "invalid_candidates": self._invalid}
        if terminated or truncated:
            obs = np.zeros(self.obs_dim, dtype=np.float32)
            obs[0] = len(self._core.lines) / max(1, self._core.max_lines)
            self._proposal = None
        else:
            obs = self._propose()
            info["candidates"] = list(self._proposal.lines)
        return obs, float(reward), bool(terminated), bool(truncated), info


# --------------------------------------------------------------------------- pipelines
class PipelinesTableProposer:
    """Candidate lines for ``pipelines`` tasks from the suite's operation table.

    After ``m`` lines of a task with steps ``s_1..s_N`` (reference lines ``R_1..R_N``), the
    ``K`` candidates are, deduplicated and shuffled: ``R_{m+1}`` (the next step, when
    ``m < N``), ``R_m`` (repeat the step just written), ``R_{m+2}`` (skip a step), ``R_{m+1}``
    with its parameter off by one, then other table lines (random operations and
    parameters) up to ``K``.

    Features per candidate (``F = 7``): which docstring step ``j`` the candidate is the
    reference line of, relative to the next step ``m + 1``, as a multi-hot over the offsets
    ``j - (m + 1)`` in ``{<= -2, -1, 0, +1, +2, >= +3}`` plus a last entry for "no step"
    (offset 0 is the right line, -1 repeats the step just written, +1 skips one). Context
    (``C = 2 * max_steps + 1``): a one-hot of the number of lines written (``0..max_steps``,
    capped) and one of ``N`` (``1..max_steps``). The best policy writes the offset-0
    candidate and submits when none is offered; a uniformly random one passes with
    probability about ``(K + 1) ** -(N + 1)``, so sparse rewards almost never reach a long
    task's success while every line's PRM reward says at once whether it was right.

    Args:
        num_candidates: ``K`` (>= 2).
        max_steps: Longest task supported (sizes the context).
        ops: Operation names the distractors are drawn from (default: the ``basic`` set).
    """

    #: Offset bins of the features: ``j - (m + 1)`` clipped to [-2, 3].
    OFFSETS = (-2, -1, 0, 1, 2, 3)

    def __init__(self, num_candidates: int = 4, max_steps: int = 12, ops: Sequence[str] | str = "basic") -> None:
        from codegym.tasks.pipelines import OP_SETS, OPS

        if not isinstance(num_candidates, int) or num_candidates < 2:
            raise ValueError(f"num_candidates must be an int >= 2, got {num_candidates!r}")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
        names = OP_SETS[ops] if isinstance(ops, str) and ops in OP_SETS else ops
        if isinstance(names, str) or not names or any(n not in OPS for n in names):
            raise ValueError(f"ops must be 'basic', 'full' or a list of names from {sorted(OPS)}, got {ops!r}")
        self.num_candidates = num_candidates
        self.max_steps = max_steps
        self.candidate_dim = len(self.OFFSETS) + 1
        self.context_dim = 2 * max_steps + 1
        self.bounds = (0.0, 1.0)
        self._ops = [OPS[n] for n in names]

    def __repr__(self) -> str:
        return f"PipelinesTableProposer(num_candidates={self.num_candidates}, max_steps={self.max_steps})"

    def _steps(self, task: Task) -> list[tuple[Any, int]]:
        from codegym.tasks.pipelines import OPS

        keys = task.metadata.get("ops")
        if not isinstance(keys, list):  # pipelines tasks name their operations in metadata["ops"]
            raise ValueError(
                f"PipelinesTableProposer needs a task that lists its operations (a pipelines task), "
                f"got {task.task_id!r}; use LMProposer (or your own proposer) for other suites"
            )
        if len(keys) > self.max_steps:
            raise ValueError(
                f"task {task.task_id!r} has {len(keys)} steps, more than max_steps={self.max_steps}; "
                "raise max_steps"
            )
        steps = []
        for key in keys:
            name, _, k = key.partition(":")
            steps.append((OPS[name], int(k) if k else 0))
        return steps

    def _random_line(self, rng: np.random.Generator, near: int) -> str:
        from codegym.tasks.pipelines import step_code

        op = self._ops[int(rng.integers(len(self._ops)))]
        if op.param == "int":
            k = int(op.domain[int(rng.integers(len(op.domain)))])
        elif op.param == "value":
            k = int(near + rng.integers(-4, 5))
        else:
            k = 0
        return step_code((op, k))

    def propose(self, task: Task, lines: Sequence[str], rng: np.random.Generator) -> Proposal:
        from codegym.tasks.pipelines import step_code

        steps = self._steps(task)
        ref = [step_code(s) for s in steps]
        n, m = len(ref), len(lines)
        wanted: list[str] = []
        if m < n:
            wanted.append(ref[m])
        if 0 < m <= n:
            wanted.append(ref[m - 1])
        if m + 1 < n:
            wanted.append(ref[m + 1])
        near = steps[min(m, n - 1)][1] if n else 0
        if m < n and steps[m][0].param != "none":
            op, k = steps[m]
            wanted.append(step_code((op, k + (1 if rng.random() < 0.5 else -1))))
        cands: list[str] = []
        for line in wanted:
            if line not in cands and len(cands) < self.num_candidates:
                cands.append(line)
        tries = 0
        while len(cands) < self.num_candidates:
            line = self._random_line(rng, near)
            tries += 1
            if line not in cands or tries > 100:
                cands.append(line)
        order = rng.permutation(self.num_candidates)
        cands = [cands[i] for i in order]
        feats = np.zeros((self.num_candidates, self.candidate_dim), dtype=np.float32)
        for i, line in enumerate(cands):
            hits = [j for j, r in enumerate(ref) if r == line]  # 0-based: step j + 1
            for j in hits:
                offset = min(max(j - m, self.OFFSETS[0]), self.OFFSETS[-1])
                feats[i, self.OFFSETS.index(offset)] = 1.0
            if not hits:
                feats[i, -1] = 1.0
        ctx = np.zeros(self.context_dim, dtype=np.float32)
        ctx[min(m, self.max_steps)] = 1.0
        ctx[self.max_steps + min(n, self.max_steps)] = 1.0
        return Proposal(cands, feats, ctx)


# ------------------------------------------------------------------------------- LM
class LMProposer:
    """``K`` next lines sampled from a causal LM, with features from the same LM.

    Features per candidate (``F = 5``): mean log-probability per token (divided by 10,
    clipped to [-10, 0]), frequency among the ``K`` samples, length in tokens over
    ``max_line_tokens``, a submit flag, a comment/blank flag. Duplicates are merged (most
    frequent first) and the free slots repeat the most frequent line with its features.
    Context (``C = hidden size``): the LM's last hidden state at the end of the code so far
    (a frozen-LM embedding), clipped to [-10, 10].

    Args:
        model_dir: A causal-LM checkpoint (``save_pretrained``) and its tokenizer.
        num_candidates: ``K``.
        temperature: Sampling temperature.
        max_line_tokens: Longest line in tokens.
        device: Torch device.

    Sampling draws its seed from the generator the wrapper passes (reproducible per env seed).
    """

    candidate_dim = 5

    def __init__(
        self,
        model_dir: str,
        num_candidates: int = 4,
        temperature: float = 1.0,
        max_line_tokens: int = 48,
        device: str = "cpu",
    ) -> None:
        from codegym.lm import load_causal_lm

        if not isinstance(num_candidates, int) or num_candidates < 1:
            raise ValueError(f"num_candidates must be an int >= 1, got {num_candidates!r}")
        self.model, self.tokenizer = load_causal_lm(model_dir, device=device)
        self.num_candidates = num_candidates
        self.temperature = float(temperature)
        self.max_line_tokens = int(max_line_tokens)
        self.context_dim = int(self.model.config.hidden_size)
        self.bounds = (-10.0, 10.0)
        self.device = device

    def __repr__(self) -> str:
        return f"LMProposer(num_candidates={self.num_candidates}, temperature={self.temperature})"

    def propose(self, task: Task, lines: Sequence[str], rng: np.random.Generator) -> Proposal:
        import torch

        from codegym.envs.code_prm import is_neutral_line
        from codegym.sampling import LineSampler
        from codegym.tokenization import encode_program, task_context

        ctx_text = task_context(task)
        gen = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**62)))
        sampler = LineSampler(self.model, self.tokenizer, temperature=self.temperature,
                              max_line_tokens=self.max_line_tokens, generator=gen)  # fmt: skip
        sampler.start([ctx_text] * self.num_candidates)
        if lines:
            for slot in range(self.num_candidates):
                sampler.set_slot(slot, ctx_text, list(lines))
        drawn = [x if x is not None else SUBMIT for x in sampler.next_lines()]
        counts: dict[str, int] = {}
        for line in drawn:
            counts[line] = counts.get(line, 0) + 1
        uniq = list(counts)
        # log-probabilities of each distinct candidate and the state embedding, one batch
        encs = [encode_program(self.tokenizer, ctx_text, list(lines) + ([u] if u != SUBMIT else [])) for u in uniq]
        prefix_len = len(encode_program(self.tokenizer, ctx_text, list(lines)).input_ids)
        width = max(len(e.input_ids) for e in encs) + 1
        pad = int(self.tokenizer.pad_token_id)
        eos = int(self.tokenizer.eos_token_id)
        ids = torch.full((len(uniq), width), pad, dtype=torch.long)
        mask = torch.zeros(len(uniq), width, dtype=torch.long)
        for i, (u, e) in enumerate(zip(uniq, encs)):
            seq = e.input_ids + ([eos] if u == SUBMIT else [])
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        with torch.no_grad():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             output_hidden_states=True)  # fmt: skip
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            state = out.hidden_states[-1][0, prefix_len - 1].float().cpu().numpy()
        feats_by_line: dict[str, np.ndarray] = {}
        for i, u in enumerate(uniq):
            n_tok = int(mask[i].sum()) - prefix_len
            tgt = ids[i, prefix_len : prefix_len + n_tok].to(self.device)
            lp = logp[i, prefix_len - 1 : prefix_len - 1 + n_tok].gather(-1, tgt[:, None]).mean().item() if n_tok else 0.0
            feats_by_line[u] = np.array([
                max(-10.0, lp / 10.0), counts[u] / self.num_candidates, n_tok / self.max_line_tokens,
                float(u == SUBMIT), float(u != SUBMIT and is_neutral_line(u)),
            ], dtype=np.float32)  # fmt: skip
        ranked = sorted(uniq, key=lambda u: (-counts[u], -float(feats_by_line[u][0])))
        chosen = (ranked * self.num_candidates)[: self.num_candidates]
        feats = np.stack([feats_by_line[u] for u in chosen])
        return Proposal(chosen, feats, np.clip(state, -10.0, 10.0).astype(np.float32))


# --------------------------------------------------------------------------- factory
def make_proposer(spec: str | Proposer, **kwargs: Any) -> Proposer:
    """A proposer from a spec: ``"pipelines"`` (:class:`PipelinesTableProposer`),
    ``"lm:DIR"`` (:class:`LMProposer`), or a :class:`Proposer` instance (returned as is).

    Raises:
        ValueError: An unknown spec.
    """
    if isinstance(spec, Proposer):
        return spec
    if spec == "pipelines":
        return PipelinesTableProposer(**kwargs)
    if isinstance(spec, str) and spec.startswith("lm:"):
        return LMProposer(spec[3:], **kwargs)
    raise ValueError(f"unknown proposer {spec!r}: use 'pipelines', 'lm:MODEL_DIR' or a Proposer instance")


def make_discrete_env(
    proposer: str | Proposer = "pipelines",
    proposer_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> CandidateLineWrapper:
    """``CodePRMEnv(**env_kwargs)`` wrapped in :class:`CandidateLineWrapper` (the entry point
    of ``CodePRMDiscrete-v0``)."""
    from codegym.envs.code_prm import CodePRMEnv

    rgb = env_kwargs.get("render_mode") == "rgb_array"
    if rgb:
        env_kwargs = {**env_kwargs, "render_mode": "ansi"}
    prop = make_proposer(proposer, **(proposer_kwargs or {}))
    return CandidateLineWrapper(CodePRMEnv(**env_kwargs), prop, rgb_array=rgb)


__all__ = [
    "CandidateLineWrapper",
    "LMProposer",
    "PipelinesTableProposer",
    "Proposal",
    "Proposer",
    "make_discrete_env",
    "make_proposer",
]
