"""codegym: Gymnasium environments for RL of code generation with process supervision.

``import codegym`` registers the environments (``CodePRM-v1``; ``CodePRM-v0`` is its
previous version)."""

from codegym.constants import SUBMIT
from codegym.envs.registration import ENV_ID, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_ID", "SUBMIT", "__version__"]

register_envs()
