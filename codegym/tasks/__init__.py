"""Task suites: ``pipelines`` (built-in, procedural), ``humaneval``, ``jsonl:PATH``."""

from codegym.tasks.base import Task
from codegym.tasks.registry import load_suite, TaskSuite

__all__ = ["Task", "TaskSuite", "load_suite"]
