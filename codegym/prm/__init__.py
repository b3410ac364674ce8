"""The Process Reward Model: model (backbone + ``score`` head), scoring, data and training.

* :class:`ProcessRewardModel` — ``save_pretrained``/``from_pretrained`` with its tokenizer.
* :func:`score_programs` — batched full scoring; :class:`IncrementalScorer` — KV-cached
  per-episode scoring (a :class:`codegym.envs.scoring.LineScorer`);
  :class:`BatchedPRMScorer` — the lines of N programs in one forward per step (the vector
  env's :class:`codegym.envs.scoring.BatchedLineScorer`).
* :func:`load_line_scorer` — what ``gym.make("CodePRM-v0", prm=DIR)`` calls.
* :mod:`codegym.prm.data` — the stepwise JSONL format; :mod:`codegym.prm.train` — training.
"""

from codegym.prm.model import ProcessRewardModel, tokenizer_fingerprint
from codegym.prm.scoring import (
    BatchedPRMScorer,
    FullRescoringScorer,
    IncrementalScorer,
    load_line_scorer,
    load_line_scorers,
    score_programs,
)

__all__ = [
    "BatchedPRMScorer",
    "FullRescoringScorer",
    "IncrementalScorer",
    "ProcessRewardModel",
    "load_line_scorer",
    "load_line_scorers",
    "score_programs",
    "tokenizer_fingerprint",
]
