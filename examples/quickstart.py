"""Replay the reference solution of a few `pipelines` tasks, then a corrupted one.

Run: .venv/bin/python examples/quickstart.py
"""

import gymnasium as gym

import codegym

env = gym.make("CodePRM-v1", suite="pipelines", render_mode="ansi")
for seed in range(3):
    obs, info = env.reset(seed=seed)
    lines = list(info["task"].solution_lines)
    if seed == 2:  # change one line: the unit tests must catch it
        lines[0] = lines[0].replace("xs", "xs[1:]", 1) if "= " in lines[0] else "    pass"
    for line in [*lines, codegym.SUBMIT]:
        obs, reward, terminated, truncated, info = env.step(line)
        if terminated or truncated:
            break
    print(env.render())
    print(f"reward={reward} status={info['exec']['status']} tests={info['exec']['passed']}/{info['exec']['total']}\n")
env.close()
