"""Captured against eager training steps (--cuda_graphs, lom/training/captured_steps.py): steps/s and agreement,
agent by agent.

On synthetic data of halfcheetah-full-replay-v2's size (benchmarks/throughput.py's) and the settings a run on such
data gets (LOM: N = 10, K = 1, the expectile critic; LOM with the sarsa critic and K = 2; IQL; TD3BC; BC), each
agent is timed for `--steps` steps eager and, on a CUDA device, captured (after their warm-up steps), and both are
trained from the same seed for `--agree_steps` steps to compare every loss at every step (largest relative
difference, against eager steps with the same capturable Adam and against plain eager steps; the bar is 1e-4).
Without CUDA, the captured rows say "not measured".

    python benchmarks/captured_steps.py --device cuda --json captured.json   # about 2 minutes on one H100
    python benchmarks/captured_steps.py --quick                               # the CPU rows only, seconds
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lom.agents import make_agent  # noqa: E402
from lom.cli import OneLineParser, run_cli  # noqa: E402
from lom.config import TrainConfig  # noqa: E402
from lom.devices import select_device  # noqa: E402
from lom.io import write_json  # noqa: E402
from lom.training.captured_steps import CapturedStep  # noqa: E402

_spec = importlib.util.spec_from_file_location("throughput", REPO / "benchmarks" / "throughput.py")
throughput = importlib.util.module_from_spec(_spec)
sys.modules["throughput"] = throughput  # its dataclasses look their module up by name
_spec.loader.exec_module(throughput)

AGENTS = {
    "LOM": dict(agent="LOM"),
    "LOM sarsa K=2": dict(agent="LOM", critic="sarsa", weight_baseline="policy", num_critics=2),
    "IQL": dict(agent="IQL"),
    "TD3BC": dict(agent="TD3BC"),
    "BC": dict(agent="BC"),
}


def config(flags: dict) -> TrainConfig:
    return TrainConfig(env_name=throughput.DATASET, **flags).resolve(throughput.DATASET)


def stepper(agent, data, captured: bool, pretrain: bool = False):
    update = agent.pretrain_step if pretrain else agent.train_step
    return CapturedStep(lambda: update(data), agent, strict=True) if captured else (lambda: update(data))


def fresh_agent(flags: dict, data, capturable: bool, seed: int = 0):
    torch.manual_seed(seed)
    agent = make_agent(config(flags), data.obs_dim, data.act_dim, capturable=capturable).to(data.device)
    if agent.pretrain_steps:
        agent.finish_pretraining(data)  # timing and agreement of the main phase need no trained mixture
    return agent


def steps_per_s(flags: dict, data, captured: bool, steps: int, warmup: int) -> float:
    agent = fresh_agent(flags, data, capturable=captured)
    step = stepper(agent, data, captured)
    for _ in range(warmup):
        step()
    throughput.synchronize(data.device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    throughput.synchronize(data.device)
    return steps / (time.perf_counter() - start)


def largest_relative_difference(flags: dict, data, steps: int, eager_capturable: bool) -> float:
    """Eager and captured runs from the same seed: max over steps and losses of |captured − eager| / |eager|. With
    `eager_capturable` the eager run uses the captured run's optimisers (bias corrections on the device), so only
    the replay differs; without, it is a plain eager run, whose Adam rounds differently in the last bits."""
    runs = []
    for captured in (False, True):
        agent = fresh_agent(flags, data, capturable=captured or eager_capturable)
        step = stepper(agent, data, captured)
        runs.append([{k: v.item() for k, v in step().items()} for _ in range(steps)])
    worst = 0.0
    for eager, captured in zip(*runs):
        for key, value in eager.items():
            worst = max(worst, abs(captured[key] - value) / max(abs(value), 1e-6))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/captured_steps.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=500, help="timed steps per agent and mode")
    p.add_argument("--agree_steps", type=int, default=1000, help="steps over which captured and eager losses agree")
    p.add_argument("--quick", action="store_true", help="20 timed steps and 20 agreement steps")
    p.add_argument("--transitions", type=int, default=throughput.TRANSITIONS, help="rows of synthetic data")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    steps, agree = (20, 20) if args.quick else (args.steps, args.agree_steps)
    device = select_device(args.device)
    cuda = device.type == "cuda"
    data = throughput.device_data(throughput.synthetic_data(args.transitions), device)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"captured vs eager steps on {name}, torch {torch.__version__}: {args.transitions:,} synthetic transitions "
          f"shaped like {throughput.DATASET}, {steps} timed steps after warm-up, agreement over {agree} steps")
    print(f"  {'agent':<16} {'eager steps/s':>14} {'captured steps/s':>17} {'speed-up':>9} "
          f"{'max rel. diff (same Adam / plain eager)':>40}")
    rows = {}
    for label, flags in AGENTS.items():
        eager = steps_per_s(flags, data, False, steps, warmup=5)
        row = {"eager_steps_per_s": eager, "captured_steps_per_s": None,
               "largest_relative_difference_same_adam": None, "largest_relative_difference_plain_eager": None}
        if cuda:
            row["captured_steps_per_s"] = steps_per_s(flags, data, True, steps, warmup=5)
            row["largest_relative_difference_same_adam"] = largest_relative_difference(flags, data, agree, True)
            row["largest_relative_difference_plain_eager"] = largest_relative_difference(flags, data, agree, False)
        rows[label] = row
        captured = row["captured_steps_per_s"]
        same, plain = row["largest_relative_difference_same_adam"], row["largest_relative_difference_plain_eager"]
        print(f"  {label:<16} {eager:>14,.0f} " + (
            f"{captured:>17,.0f} {captured / eager:>8.1f}x {same:>20.2e} {plain:>19.2e}" if cuda
            else f"{'not measured':>17} {'':>9} {'(needs CUDA)':>40}"))
    if args.json:
        write_json(args.json, {"device": name, "torch": torch.__version__, "transitions": args.transitions,
                               "steps": steps, "agree_steps": agree, "agents": rows})
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
