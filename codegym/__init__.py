"""codegym: Gymnasium environments for RL of code generation with process supervision.

``import codegym`` registers the environments (``CodePRM-v0``)."""

from codegym.constants import SUBMIT
from codegym.envs.registration import register_envs

__version__ = "0.1.0"
__all__ = ["SUBMIT", "__version__"]

register_envs()
