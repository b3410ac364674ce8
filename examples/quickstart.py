"""Replay the reference solution of a few `pipelines` tasks, then a corrupted one, with the
embedded default PRM scoring every line (the default of ``gym.make("CodePRM-v0")``).

Run: .venv/bin/python examples/quickstart.py
"""

import gymnasium as gym

import codegym

env = gym.make(codegym.ENV_ID, suite="pipelines", split="test", render_mode="ansi")
print("dense rewards from:", env.unwrapped.prm_source)
for seed in range(3):
    obs, info = env.reset(seed=seed)
    lines = list(info["task"].solution_lines)
    if seed == 2:  # change one line: the unit tests must catch it
        lines[0] = lines[0].replace("xs", "xs[1:]", 1) if "= " in lines[0] else "    pass"
    episode_return = 0.0
    for line in [*lines, codegym.SUBMIT]:
        obs, reward, terminated, truncated, info = env.step(line)
        episode_return += reward
        if terminated or truncated:
            break
    print(env.render())
    print(f"return={episode_return:+.3f} status={info['exec']['status']} "
          f"tests={info['exec']['passed']}/{info['exec']['total']}\n")
env.close()
