"""What codegym writes and shows: strict JSON (:mod:`~codegym.reporting.jsonio`), pass rates
with intervals and paired comparisons (:mod:`~codegym.reporting.stats`) and plots
(:mod:`~codegym.reporting.plotting`)."""
