"""Re-evaluate a finished (or interrupted) run's policy: `python -m lom.evaluate RUN_DIR --episodes 20 --seed 7`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lom.agents import Agent, make_agent
from lom.cli import OneLineParser, run_cli
from lom.config import TrainConfig
from lom.data import resolve_dataset
from lom.data.batches import ObservationNormalizer
from lom.data.types import DatasetSpec
from lom.devices import select_device
from lom.errors import LOMError
from lom.run_folder import CHECKPOINT, CONFIG
from lom.training.evaluation import evaluate
from lom.training.resume import load_current


@dataclass
class LoadedRun:
    run_dir: Path
    config: TrainConfig
    spec: DatasetSpec
    agent: Agent
    normalizer: ObservationNormalizer
    record: dict  # config.json as written by the run
    progress: dict  # phase and step of the checkpoint the networks come from


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Rebuild a run's agent (one seed: `agent.act_single` takes (B, O) states) and state standardisation from its
    config.json and checkpoint.pt."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise LOMError(f"{run_dir} is not a run folder (no config.json); pass a folder printed by train.py")
    if not (run_dir / CHECKPOINT).is_file():
        raise LOMError(f"{run_dir} holds no {CHECKPOINT}: the run stopped before saving its networks;"
                       " run train.py with the same flags (add --resume) first")
    record = json.loads(config_path.read_text())
    cfg = TrainConfig(**{f.name: record[f.name] for f in dataclasses.fields(TrainConfig) if f.name in record})
    spec = resolve_dataset(cfg.env_name, cfg.dataset_path)
    torch_device = select_device(device)
    state = load_current(run_dir / CHECKPOINT, cfg, map_location=torch_device)
    agent = make_agent(cfg, record["obs_dim"], record["act_dim"]).to(torch_device)
    agent.load_training_state(state["agent"])
    agent.eval()
    normalizer = ObservationNormalizer(torch.zeros(record["obs_dim"]), torch.ones(record["obs_dim"]))
    normalizer.load_state_dict(state["normalizer"])
    return LoadedRun(run_dir, cfg, spec, agent, normalizer.to(torch_device), record, state["progress"])


def main() -> None:
    parser = OneLineParser(prog="python -m lom.evaluate", description=__doc__)
    parser.add_argument("run_dir", help="a run folder (holds config.json and checkpoint.pt)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run, in parallel")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    if args.episodes < 1:
        raise LOMError(f"--episodes must be at least 1, got {args.episodes}")
    select_device(args.device)  # before the run folder is read: a bad flag is the first thing said
    run = load_run(args.run_dir, args.device)
    result = evaluate(run.agent.act_single, run.normalizer, run.spec, args.episodes, args.seed, run.normalizer.mean.device)
    s = result.summary
    print(f"{run.spec.name} {run.config.agent} seed {run.config.seed}: return {s['return_mean']:.2f} ± "
          f"{s['return_std']:.2f}, normalised score {s['normalized_score']:.1f} ± {s['normalized_score_std']:.1f} "
          f"over {args.episodes} episodes")


if __name__ == "__main__":
    run_cli(main)
