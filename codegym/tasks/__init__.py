"""Task suites: ``pipelines`` (built-in, procedural), ``humaneval``, ``jsonl:PATH``; which one
a job draws from is a :class:`SuiteConfig`."""

from codegym.tasks.base import Task
from codegym.tasks.registry import SuiteConfig, TaskSuite, load_suite

__all__ = ["SuiteConfig", "Task", "TaskSuite", "load_suite"]
