"""Do two checkouts train to the same numbers? Runs each agent on the built-in fork with a short schedule in both
trees and compares their metrics.csv, every column but wall_time_s (what a restructuring must leave unchanged).

    git worktree add --detach /tmp/before <commit>
    python benchmarks/same_metrics.py /tmp/before .          # exit 0 when every agent's metrics are identical
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

AGENTS = ("LOM", "IQL", "TD3BC", "BC")
SCHEDULE = ["--env_name", "multimodal-fork-v0", "--training_steps", "600", "--gmm_steps", "200", "--eval_every", "200",
            "--eval_episodes", "3", "--checkpoint_every", "150", "--seed", "0"]


def metrics(tree: Path, agent: str, log_path: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(log_path / "cache")}
    args = [sys.executable, "train.py", *SCHEDULE, "--agent", agent, "--log_path", str(log_path / "runs")]
    subprocess.run(args, cwd=tree, env=env, check=True, capture_output=True, text=True)
    run_dir = subprocess.run([*args, "--print_run_dir"], cwd=tree, env=env, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the checkout before the change")
    parser.add_argument("after", type=Path, help="the checkout after it")
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma-separated agents")
    args = parser.parse_args()
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for agent in args.agents.split(","):
            before = metrics(args.before.resolve(), agent, Path(tmp) / "before")
            after = metrics(args.after.resolve(), agent, Path(tmp) / "after")
            same = before == after
            differ += not same
            print(f"{agent}: {len(after)} evaluations, {'identical' if same else 'DIFFERENT'} "
                  f"(final score {after[-1]['normalized_score']})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
