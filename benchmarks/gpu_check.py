"""The checks of `benchmarks/gpu_check.sh` that are more than a command: do two sets of runs write the same
metrics, and does the hot loop run without a host synchronisation on a CUDA device.

    python benchmarks/gpu_check.py same-metrics RUNS_A RUNS_B --tolerance 1e-4 --json same.json
    python benchmarks/gpu_check.py no-sync --steps 200 --json no_sync.json       # needs a CUDA device
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lom.cli import OneLineParser, run_cli  # noqa: E402
from lom.errors import LOMError  # noqa: E402
from lom.io import write_json  # noqa: E402

TIME_COLUMN = "wall_time_s"
# Steps before the watched ones: the loss window makes its device-side index tensors at a step's first losses.
NO_SYNC_WARMUP = 10
NO_SYNC_AGENTS = {"LOM": {}, "LOM-sarsa": {"critic": "sarsa", "weight_baseline": "policy"}, "IQL": {}, "TD3BC": {},
                  "BC": {}}


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def metric_differences(a_root: Path, b_root: Path, tolerance: float) -> tuple[int, list[str]]:
    """Compare every metrics.csv under `a_root` with the one at the same place under `b_root`, every column but
    wall time, numbers within `tolerance` (relative, or absolute near 0). The number of runs compared, and a line
    per difference."""
    runs = sorted(p.relative_to(a_root) for p in a_root.rglob("metrics.csv"))
    if not runs:
        raise LOMError(f"{a_root} holds no metrics.csv: pass the --log_path of finished runs")
    problems = []
    for run in runs:
        if not (b_root / run).is_file():
            problems.append(f"{run.parent}: no metrics.csv under {b_root}")
            continue
        a, b = read_metrics(a_root / run), read_metrics(b_root / run)
        if len(a) != len(b):
            problems.append(f"{run.parent}: {len(a)} evaluations against {len(b)}")
        for row_a, row_b in zip(a, b):
            for column in row_a.keys() - {TIME_COLUMN}:
                x, y = row_a[column], row_b.get(column)
                if y is None or not _close(x, y, tolerance):
                    problems.append(f"{run.parent} step {row_a.get('step')}: {column} {x} against {y}")
    return len(runs), problems


def _close(x: str, y: str, tolerance: float) -> bool:
    try:
        a, b = float(x), float(y)
    except ValueError:
        return x == y
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance) or (math.isnan(a) and math.isnan(b))


def no_sync(steps: int) -> dict:
    """Each agent's training step and loss window on the CUDA device, `steps` steps with every synchronising CUDA
    call an error (torch.cuda.set_sync_debug_mode), after NO_SYNC_WARMUP ordinary ones."""
    import torch

    from lom.agents import make_agent
    from lom.config import TrainConfig
    from lom.devices import select_device
    from lom.training.loss_window import LossWindow

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import throughput

    device = select_device("cuda")
    data = throughput.device_data(throughput.synthetic_data(10_000), device)
    result = {"device": torch.cuda.get_device_name(device), "steps": steps, "agents": {}}
    for label, flags in NO_SYNC_AGENTS.items():
        cfg = TrainConfig(agent=label.split("-")[0], gmm_steps=1, **flags).resolve("synthetic", data.act_dim)
        agent = make_agent(cfg, data.obs_dim, data.act_dim, capturable=True).to(device)
        agent.finish_pretraining(data)
        window = LossWindow(steps + NO_SYNC_WARMUP + 1, device)
        for step in range(NO_SYNC_WARMUP):
            window.add(step, agent.train_step(data))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(NO_SYNC_WARMUP, NO_SYNC_WARMUP + steps):
                window.add(step, agent.train_step(data))
        except RuntimeError as exc:
            result["agents"][label] = f"synchronised at step {step}: {' '.join(str(exc).split())}"
        else:
            result["agents"][label] = "no synchronisation"
        finally:
            torch.cuda.set_sync_debug_mode("default")
        window.take_means()
        print(f"{label}: {result['agents'][label]}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    same = commands.add_parser("same-metrics", help="compare two --log_path folders of the same runs")
    same.add_argument("runs_a", type=Path)
    same.add_argument("runs_b", type=Path)
    same.add_argument("--tolerance", type=float, default=1e-4, help="relative (or, near 0, absolute) tolerance")
    same.add_argument("--json", type=Path, help="also write the result here")
    sync = commands.add_parser("no-sync", help="training steps with synchronising CUDA calls made errors")
    sync.add_argument("--steps", type=int, default=200)
    sync.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.command == "same-metrics":
        runs, problems = metric_differences(args.runs_a, args.runs_b, args.tolerance)
        result = {"runs": runs, "tolerance": args.tolerance, "differences": problems}
        print(f"{runs} runs compared, {len(problems)} differences beyond {args.tolerance:g}", flush=True)
        for line in problems[:20]:
            print(f"  {line}")
        ok = not problems
    else:
        result = no_sync(args.steps)
        ok = all(v == "no synchronisation" for v in result["agents"].values())
    if args.json:
        write_json(args.json, result)
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
