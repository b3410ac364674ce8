"""The machinery of long jobs, shared by every trainer: the trainer skeleton that SFT, PRM
training and PPO subclass (:mod:`~codegym.training.trainer`), run directories that resume or
refuse (:mod:`~codegym.training.rundir`), atomic checkpoints and metrics files
(:mod:`~codegym.training.checkpoint`), TensorBoard mirroring (:mod:`~codegym.training.tracking`),
smoke-sized budgets (:mod:`~codegym.training.smoke`) and model cards
(:mod:`~codegym.training.modelcard`)."""
