"""``bestofn`` and ``beam``: a causal LM searched with a line scorer (a PRM, or the oracle).

``codegym eval --agent bestofn --model DIR --agent-arg prm=PRM_DIR --agent-arg n=8`` samples
8 programs per episode and writes the one the PRM ranks highest into the env;
``--agent beam --agent-arg beams=2 --agent-arg k=4`` runs a line-level beam search with 2
beams and 4 candidate lines per beam and step (about the budget of best-of-8). ``prm=default``
is the embedded PRM; ``prm=oracle`` scores by execution (the exact prefix oracle of
``pipelines`` and the program's own verdict: the ceiling). The algorithms, the budget they
spend and how it is counted are in :mod:`codegym.search.strategies`; every episode's row of
``codegym eval`` carries its ``budget`` and the eval prints the total.

The policy is sampled exactly as the ``hf`` agent samples it (same arguments, same seed, same
draws): ``bestofn`` with ``n=1`` and ``beam`` with ``beams=1 k=1`` are plain sampling.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agents.base import Agent, Observation
from agents.hf import HFAgent
from codegym.constants import SUBMIT
from codegym.search import OracleScorer, PRMScorer, SearchAgent, beam_search, best_of_n
from codegym.search.aggregate import check_aggregation


def _scorer(prm: Any, *, device: str, workers: int, timeout: float, prefixes: bool) -> tuple[Any, Any]:
    """The line scorer named by ``prm`` and the sandbox it owns (or None)."""
    from codegym.defaults import resolve_model

    if prm is None or prm in ("", "none"):
        raise ValueError("a search agent needs a line scorer: --agent-arg prm=DIR|default|oracle")
    if prm == "oracle":
        from sandboxes import make_sandbox

        box = make_sandbox("local", workers=workers)
        return OracleScorer(box, timeout=timeout, prefixes=prefixes, workers=workers), box
    return PRMScorer(resolve_model(str(prm), "prm") if isinstance(prm, str) else prm, device=device), None


class _SearchLM(SearchAgent, Agent):
    """A search over an :class:`~agents.hf.HFAgent`'s sampler; single-episode API included."""

    def _setup(self, search: Any, model: Any, tokenizer: Any, prm: Any, *, aggregation: str, temperature: float,
               top_p: float, max_line_tokens: int, max_lines: int, device: str, seed: int | None,
               max_line_chars: int, workers: int, timeout: float, dtype: str = "fp32",
               prm_device: str | None = None) -> None:  # fmt: skip
        if model is None:
            raise ValueError(f"the {self.name} agent needs a policy: pass --model DIR (or --model default)")
        if isinstance(model, str):
            from codegym.defaults import resolve_model

            model = resolve_model(model, "policy")  # "default": the embedded policy
        check_aggregation(aggregation)
        if not isinstance(max_lines, int) or max_lines < 1:
            raise ValueError(f"max_lines must be an int >= 1, got {max_lines!r}")
        self.policy = HFAgent(model=model, tokenizer=tokenizer, temperature=temperature, top_p=top_p,
                              max_line_tokens=max_line_tokens, device=device, seed=seed,
                              max_line_chars=max_line_chars, dtype=dtype)  # fmt: skip
        self.scorer, self._sandbox = _scorer(prm, device=prm_device or device, workers=workers, timeout=timeout,
                                             prefixes=aggregation != "last")  # fmt: skip
        SearchAgent.__init__(self, partial(search, self.policy, self.scorer, aggregation=aggregation, max_lines=max_lines))

    def close(self) -> None:
        """Stop the oracle's threads and sandbox (nothing to do for a PRM)."""
        if isinstance(self.scorer, OracleScorer):
            self.scorer.close()
        if self._sandbox is not None:
            self._sandbox.close()

    def reset(self, obs: Observation, info: dict[str, Any]) -> None:
        """Search for one episode (slot 0 of a batch of one)."""
        self.reset_batch([obs], [info])

    def act(self, obs: Observation) -> str:
        """The next line of the chosen program, then SUBMIT."""
        out = self.act_batch([obs])[0]
        return SUBMIT if out is None else out


class BestOfNAgent(_SearchLM):
    """Best-of-N reranking: ``n`` sampled programs, the best by ``aggregation`` of line scores.

    Args:
        model: Policy checkpoint directory, ``default`` (the embedded policy), or a loaded
            model (with ``tokenizer``).
        tokenizer: The tokenizer when ``model`` is an object.
        prm: The line scorer: a PRM directory, ``default`` (the embedded PRM) or ``oracle``.
        n: Programs sampled per episode.
        aggregation: ``last``, ``min``, ``mean`` or ``product`` (:mod:`codegym.search.aggregate`).
        temperature: Sampling temperature (> 0).
        top_p: Nucleus mass in (0, 1].
        max_line_tokens: A line is cut after this many tokens.
        max_lines: A sampled program ends after this many lines (keep it <= the env's).
        device: Torch device of the policy (and of the PRM unless ``prm_device``).
        seed: Seed of the sampling generator.
        max_line_chars: Lines are cut to this many characters (the env's limit).
        workers: Parallel executions of the oracle.
        timeout: Seconds per oracle execution.
        dtype: Precision of the policy's weights (``"fp32"``, ``"bf16"``, ``"fp16"``, ``"auto"``).
        prm_device: Torch device of the PRM scorer (``None``: ``device``).
    """

    name = "bestofn"

    def __init__(self, model: Any = None, tokenizer: Any = None, prm: Any = "default", n: int = 8,
                 aggregation: str = "last", temperature: float = 1.0, top_p: float = 1.0, max_line_tokens: int = 64,
                 max_lines: int = 32, device: str = "cpu", seed: int | None = 0, max_line_chars: int = 256,
                 workers: int = 2, timeout: float = 5.0, dtype: str = "fp32",
                 prm_device: str | None = None) -> None:  # fmt: skip
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an int >= 1 (programs per episode), got {n!r}")
        self.n = n
        self._setup(partial(best_of_n, n=n), model, tokenizer, prm, aggregation=aggregation, temperature=temperature,
                    top_p=top_p, max_line_tokens=max_line_tokens, max_lines=max_lines, device=device, seed=seed,
                    max_line_chars=max_line_chars, workers=workers, timeout=timeout, dtype=dtype,
                    prm_device=prm_device)  # fmt: skip


class BeamSearchAgent(_SearchLM):
    """Line-level beam search: ``beams`` beams, ``k`` candidate lines per beam and step.

    Args:
        model: Policy checkpoint directory, ``default`` (the embedded policy), or a loaded
            model (with ``tokenizer``).
        tokenizer: The tokenizer when ``model`` is an object.
        prm: The line scorer: a PRM directory, ``default`` (the embedded PRM) or ``oracle``.
        beams: Beams kept per step (B).
        k: Candidate lines per beam and step (B · k lines per step: best-of-(B · k)'s budget).
        aggregation: Ranks beams and finished programs (``last``: the newest line's score).
        temperature: Sampling temperature (> 0).
        top_p: Nucleus mass in (0, 1].
        max_line_tokens: A line is cut after this many tokens.
        max_lines: A beam ends after this many lines (keep it <= the env's).
        device: Torch device of the policy (and of the PRM unless ``prm_device``).
        seed: Seed of the sampling generator.
        max_line_chars: Lines are cut to this many characters (the env's limit).
        workers: Parallel executions of the oracle.
        timeout: Seconds per oracle execution.
        dtype: Precision of the policy's weights (``"fp32"``, ``"bf16"``, ``"fp16"``, ``"auto"``).
        prm_device: Torch device of the PRM scorer (``None``: ``device``).
    """

    name = "beam"

    def __init__(self, model: Any = None, tokenizer: Any = None, prm: Any = "default", beams: int = 2, k: int = 4,
                 aggregation: str = "last", temperature: float = 1.0, top_p: float = 1.0, max_line_tokens: int = 64,
                 max_lines: int = 32, device: str = "cpu", seed: int | None = 0, max_line_chars: int = 256,
                 workers: int = 2, timeout: float = 5.0, dtype: str = "fp32",
                 prm_device: str | None = None) -> None:  # fmt: skip
        for name, value in (("beams", beams), ("k", k)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.beams, self.k = beams, k
        self._setup(partial(beam_search, beams=beams, k=k), model, tokenizer, prm, aggregation=aggregation,
                    temperature=temperature, top_p=top_p, max_line_tokens=max_line_tokens, max_lines=max_lines,
                    device=device, seed=seed, max_line_chars=max_line_chars, workers=workers, timeout=timeout,
                    dtype=dtype, prm_device=prm_device)  # fmt: skip
