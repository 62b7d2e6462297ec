"""Which strategy trained agents follow in the Fetch tasks: evaluation episodes of each run, each classified by
`lom.fetch.world.classify_episode` (the zone it reached or went at least halfway to, or none), and the shares per
agent. `python -m lom.fetch.plot --agents PATH ...` prints them and draws them.

Episode i of a run is reset with seed + i, as `python -m lom.evaluate` does, so both see the same episodes. Torch
loads only when a run's policy is (`run_policy`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lom.agents import REGISTRY
from lom.errors import LOMError
from lom.fetch import behaviour, dataset as fetch_dataset, world
from lom.run_folder import CHECKPOINT, CONFIG, RUN_DIR_NAME

EPISODES = 20  # evaluation episodes per run
EVAL_SEED = 0


@dataclass
class RunStrategies:
    """A run's evaluation episodes: the strategy of each (a zone, or world.NO_ZONE) and its return."""

    dataset: str
    agent: str  # the report's column label: the agent, "LOM [paper]" under --preset paper
    seed: int  # the run's training seed
    run_dir: Path | None
    strategies: np.ndarray
    returns: np.ndarray


def episode_strategies(task: world.FetchTask, policy: behaviour.Policy, episodes: int, seed: int = EVAL_SEED
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(strategy, return) of each of `episodes` episodes of `policy` (one observation -> one action), episode i
    reset with seed + i in the task env that scored the dataset."""
    env = world.MultimodalFetchEnv(task.name)
    found, returns = [], []
    try:
        for i in range(episodes):
            episode = behaviour.run_episode(env, lambda obs: np.clip(policy(obs), -1.0, 1.0), seed + i)
            found.append(world.classify_episode(episode.observations, task))
            returns.append(episode.total)
    finally:
        env.close()
    return np.array(found, dtype=np.int64), np.array(returns)


def shares(found: np.ndarray, task: world.FetchTask) -> np.ndarray:
    """The share of episodes per strategy: one per zone, then no zone last; they sum to 1."""
    counts = [np.sum(found == k) for k in range(len(task.zones))] + [np.sum(found == world.NO_ZONE)]
    return np.asarray(counts, dtype=np.float64) / max(len(found), 1)


def run_folders(paths: list[Path]) -> list[Path]:
    """The run folders named by `paths`: each a run folder itself, or a folder searched for run folders (seed<S>
    folders with config.json). A folder with no run, or a run without its networks, is refused in one line."""
    found = []
    for path in paths:
        if (path / CONFIG).is_file():
            folders = [path]
        elif path.is_dir():
            folders = sorted(p.parent for p in path.rglob(CONFIG) if RUN_DIR_NAME.fullmatch(p.parent.name))
            if not folders:
                raise LOMError(f"no run folders under {path} — pass folders that train.py wrote (they hold {CONFIG})")
        else:
            raise LOMError(f"{path} is not a run folder or a folder of runs")
        unfinished = [f for f in folders if not (f / CHECKPOINT).is_file()]
        if unfinished:
            raise LOMError(f"{unfinished[0]} holds no {CHECKPOINT} (the run has saved no networks yet)"
                           + (f", nor do {len(unfinished) - 1} more" if len(unfinished) > 1 else "")
                           + " — wait for it or leave it out")
        found += [f for f in folders if f not in found]
    return found


def run_label(config: dict) -> str:
    """The run's agent as lom.report's table names it: "LOM [paper]" for LOM under --preset paper."""
    return f"{config['agent']} [paper]" if config["agent"] == "LOM" and config.get("preset") == "paper" else \
        config["agent"]


def run_policy(run_dir: Path):
    """The run's deterministic policy: one observation -> one action."""
    import torch

    from lom.evaluate import load_run

    run = load_run(run_dir, device="cpu")

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return run.agent.act_single(run.normalizer(torch.as_tensor(obs[None], dtype=torch.float32)))[0].numpy()

    return act


def evaluate_runs(paths: list[Path], episodes: int = EPISODES, seed: int = EVAL_SEED,
                  progress: bool = False) -> list[RunStrategies]:
    """Every run under `paths` on a Fetch dataset, evaluated for `episodes` episodes; runs on other datasets are
    named on stderr and left out (none on a Fetch dataset: refused in one line)."""
    results, others = [], []
    for run_dir in run_folders(paths):
        config = json.loads((run_dir / CONFIG).read_text())
        name = str(config.get("env_name", "")).lower()
        if name not in fetch_dataset.DATASET_NAMES:
            others.append(run_dir)
            continue
        policy = run_policy(run_dir)
        if progress:
            print(f"evaluating {run_dir} ({episodes} episodes)", file=sys.stderr)
        found, returns = episode_strategies(world.TASKS[name], policy, episodes, seed)
        results.append(RunStrategies(name, run_label(config), int(config["seed"]), run_dir, found, returns))
    if others:
        print(f"left out {len(others)} run(s) not on a Fetch dataset, e.g. {others[0]}", file=sys.stderr)
    if not results:
        raise LOMError(f"no run on a Fetch dataset ({', '.join(fetch_dataset.DATASET_NAMES)}) under "
                       f"{', '.join(map(str, paths))}")
    return results


def agent_order(label: str) -> tuple[int, str]:
    agent = label.split(" ")[0]
    names = list(REGISTRY)
    return (names.index(agent) if agent in names else len(names), label)


def group_by_agent(results: list[RunStrategies]) -> dict[str, dict[str, list[RunStrategies]]]:
    """dataset -> agent label -> its runs (by seed); datasets in the Fetch order, agents in config's order."""
    grouped: dict[str, dict[str, list[RunStrategies]]] = {}
    for name in fetch_dataset.DATASET_NAMES:
        runs = [r for r in results if r.dataset == name]
        if runs:
            labels = sorted({r.agent for r in runs}, key=agent_order)
            grouped[name] = {label: sorted((r for r in runs if r.agent == label), key=lambda r: r.seed)
                             for label in labels}
    return grouped


def normalised_score(name: str, returns: np.ndarray) -> float:
    low, high = fetch_dataset.REFERENCES[name]
    return float(100 * (np.mean(returns) - low) / (high - low))


def format_table(results: list[RunStrategies], seed: int = EVAL_SEED) -> str:
    """Per dataset: a row per agent (its runs' episodes together) and a row per run, with the share of episodes
    that went for each zone and for none, the mean return and the normalised score."""
    lines = []
    for name, agents in group_by_agent(results).items():
        task = world.TASKS[name]
        lines.append(f"{name}: the zone each evaluation episode went for (episode i reset with seed {seed} + i)")
        lines.append(f"  {'agent':<16}{'episodes':>9}" + "".join(f"{f'zone {k}':>8}" for k in range(len(task.zones)))
                     + f"{'none':>7}{'return':>8}{'score':>7}")
        for label, runs in agents.items():
            for row_label, group in [(label, runs)] + ([(f"  seed {r.seed}", [r]) for r in runs] if len(runs) > 1
                                                       else []):
                found = np.concatenate([r.strategies for r in group])
                returns = np.concatenate([r.returns for r in group])
                share = shares(found, task)
                lines.append(f"  {row_label:<16}{len(found):>9}" + "".join(f"{s:>8.0%}" for s in share[:-1])
                             + f"{share[-1]:>7.0%}{returns.mean():>8.3f}{normalised_score(name, returns):>7.1f}")
        lines.append("  zones: " + ", ".join(f"{k} {n} (worth {w:g})" for k, (n, w) in
                                               enumerate(zip(task.mode_names, task.worths))))
    return "\n".join(lines)
