"""Task suites: ``pipelines`` (built-in, procedural), ``humaneval``, ``jsonl:PATH``."""

from codegym.tasks.base import Task
from codegym.tasks.registry import TaskSuite, load_suite

__all__ = ["Task", "TaskSuite", "load_suite"]
