"""codegym: Gymnasium environments for RL of code generation with process supervision.

``import codegym`` registers the environments: ``gym.make("CodePRM-v0")`` (one program
written line by line), ``gym.make_vec("CodePRM-v0", N)`` (N of them, the native vector env)
and ``CodePRMDiscrete-v0`` (a discrete-action form for Stable-Baselines3)."""

from codegym.constants import SUBMIT
from codegym.envs.registration import ENV_ID, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_ID", "SUBMIT", "__version__"]

register_envs()
