"""Automated process supervision: line labels by binary search over prefixes.

See :mod:`codegym.labeling.core` (the labeler), :mod:`codegym.labeling.completers`
(samplers) and :mod:`codegym.labeling.pipeline` (``codegym label``: resumable JSONL runs).
"""

from codegym.labeling.completers import HFCompleter, ReferenceCompleter, make_completer
from codegym.labeling.core import (
    Completer,
    LabelConfig,
    LabeledResponse,
    Labeler,
    PrefixCheck,
    code_line_indices,
    is_code_line,
    labels_for,
    max_prefix_checks,
)
from codegym.labeling.pipeline import (
    LabelRun,
    LabelRunConfig,
    read_rows,
    response_rng,
    summarize,
    summary_path,
)

__all__ = [
    "Completer",
    "HFCompleter",
    "LabelConfig",
    "LabelRun",
    "LabelRunConfig",
    "LabeledResponse",
    "Labeler",
    "PrefixCheck",
    "ReferenceCompleter",
    "code_line_indices",
    "is_code_line",
    "labels_for",
    "make_completer",
    "max_prefix_checks",
    "read_rows",
    "response_rng",
    "summarize",
    "summary_path",
]
