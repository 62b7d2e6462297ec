"""How do LOM's Walker2d policies stand? From each run's final checkpoint, roll the actor out over 5 episodes and
report how far the torso leans back in the first 40 steps (the minimum of its angle, the observation's second
entry; Walker2d-v4 ends an episode below −1) and how long each episode lasts.

Usage: python results/full_replay/probe_lean.py RUN_DIR [RUN_DIR ...] [--episodes 5] [--out CSV]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lom.evaluate import load_run  # noqa: E402

FIRST_STEPS = 40  # the data's episodes lean back furthest within their first 40 steps
EVAL_SEED = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", help="write one CSV row per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run_dir in args.run_dirs:
        run = load_run(run_dir)
        env = gym.make(run.spec.env_id)
        lean, lengths, returns = [], [], []
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=EVAL_SEED + episode)
            angles, total = [], 0.0
            for step in range(env.spec.max_episode_steps):
                with torch.no_grad():
                    action = run.agent.act_single(run.normalizer(torch.as_tensor(obs, dtype=torch.float32)[None]))[0]
                obs, reward, terminated, truncated, _ = env.step(action.numpy())
                angles.append(float(obs[1]))
                total += float(reward)
                if terminated or truncated:
                    break
            lean.append(min(angles[:FIRST_STEPS]))
            lengths.append(step + 1)
            returns.append(total)
        parts = Path(run_dir).resolve().parts
        row = {"run": "/".join(parts[-5:-3] + parts[-1:]), "components": run.agent.hp.num_components,
               "step": run.progress["step"], "min_angle_first_40": round(sum(lean) / len(lean), 3),
               "episode_lengths": " ".join(map(str, lengths)), "mean_return": round(sum(returns) / len(returns), 1)}
        print(row, flush=True)
        rows.append(row)
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
