"""The ``codegym`` sub-commands that run agents: ``sft``, ``train`` and ``reproduce``.

They are registered as ``codegym.commands`` entry points in ``pyproject.toml`` (``codegym``
itself never imports ``agents``). Each module has ``NAME``, ``HELP``, ``add_parser`` and
``run``; its options are generated from its config dataclass (:mod:`codegym.config`).
"""
