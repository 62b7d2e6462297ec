"""Training speed with one or two torch threads when a CPU-bound process starts beside the run after it began.

Each workload (mixture pre-training, a LOM step, an IQL step; default networks, HalfCheetah-shaped synthetic data)
trains in a child process for --seconds with a given thread count (and, for one setting, OpenMP's passive wait
policy, which must be set before torch loads). After the first third a busy loop starts on another process; steps/s
are counted before it (idle) and after it (loaded).

    python benchmarks/threads_under_load.py --seconds 12 --json threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {  # label: (threads, extra environment)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}
WORKLOADS = ("mixture", "LOM", "IQL")
BUSY_LOOP = "while True: pass"
SETTLE_S = 0.5  # after the load starts, before loaded steps are counted


def child(workload: str, seconds: float) -> None:
    """Train `workload` for `seconds`, then print every step's end time (time.monotonic) as JSON."""
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
    import torch

    import throughput
    from lom.agents import make_agent
    from lom.config import TrainConfig

    data = throughput.device_data(throughput.synthetic_data(100_000), torch.device("cpu"))
    cfg = TrainConfig(agent="IQL" if workload == "IQL" else "LOM", gmm_steps=1).resolve("synthetic", data.act_dim)
    agent = make_agent(cfg, data.obs_dim, data.act_dim)
    if workload == "LOM":
        agent.finish_pretraining(data)
    step = agent.pretrain_step if workload == "mixture" else agent.train_step
    for _ in range(3):
        step(data)
    print("ready", flush=True)
    ends, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        step(data)
        ends.append(time.monotonic())
    print(json.dumps({"threads": torch.get_num_threads(), "ends": ends}), flush=True)


def measure(workload: str, threads: int, extra_env: dict, seconds: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **extra_env}
    proc = subprocess.Popen([sys.executable, __file__, "--child", workload, "--seconds", str(seconds)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    time.sleep(seconds / 3)
    load = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    load_start = time.monotonic()
    try:
        report = json.loads(proc.stdout.readline())
        proc.wait(timeout=60)
    finally:
        load.kill()
        load.wait()
    ends = report["ends"]
    idle = sum(start <= t < load_start for t in ends) / (load_start - start)
    loaded_from = load_start + SETTLE_S
    loaded = sum(t >= loaded_from for t in ends) / max(ends[-1] - loaded_from, 1e-9)
    return {"threads": report["threads"], "idle_steps_per_s": round(idle, 2), "loaded_steps_per_s": round(loaded, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="training time per measurement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds)
        return 0
    rows = {}
    print(f"{'workload':<10} {'setting':<36} {'idle steps/s':>13} {'loaded steps/s':>15}", flush=True)
    for workload in WORKLOADS:
        for label, (threads, extra) in SETTINGS.items():
            row = measure(workload, threads, extra, args.seconds)
            rows[f"{workload} / {label}"] = row
            print(f"{workload:<10} {label:<36} {row['idle_steps_per_s']:>13.1f} {row['loaded_steps_per_s']:>15.1f}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "seconds": args.seconds, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
