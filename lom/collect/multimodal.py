"""A multimodal locomotion dataset from several `lom.collect` runs: `python -m lom.collect.multimodal --env ENV
--parts DIR DIR ... --shares S S ... --episodes N --out OUT`.

Each part is a collection whose SAC learned its own objective in one env (e.g. HalfCheetah-v4 running forwards, and
backwards with `--env_kwargs forward_reward_weight=-1`). Its final policy (or the snapshot of `--policy_steps`) acts
by stochastic samples, as in lom.collect's expert file, for its share of N whole episodes, all in the scoring env
ENV as registered, so every reward is the scoring objective's. The episodes' order is shuffled from the seed.
OUT/<env>_multimodal.hdf5 is D4RL-format with `infos/mode` (the part's index) and `infos/episode` per row, and
metadata naming the parts and each mode's share and mean return. Scores normalise from the uniform random policy
(0) to the best part's deterministic policy (100) in the scoring env, each over `--reference_episodes` episodes
from the same seeds lom.collect uses for its references.json, so a part that is the scoring env's own collection's
final policy gets exactly that collection's references when the seeds agree.
Episode k starts from reset seed and sampling seed `seed + EPISODE_SEED + k` (metadata/episode_seeds), so any
episode can be replayed alone. Rerunning the same command reports the finished file; other settings are refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import h5py
import mujoco
import numpy as np
import torch
from tqdm import tqdm

import lom
from lom.cli import OneLineParser
from lom.collect import directions
from lom.collect.collection import (
    CONFIG_NAME as COLLECT_CONFIG_NAME,
    EXPERT_REF_SEED,
    RANDOM_REF_SEED,
    _differences,
    dataset_path,
)
from lom.collect.sac import (
    SAC_CHECKPOINT,
    TanhGaussianActor,
    actor_policy,
    env_dims,
    format_env_kwargs,
    load_checkpoint,
    make_online_env,
    random_policy,
    rollout,
)
from lom.errors import LOMError, cli_status, writing
from lom.io import write_d4rl_hdf5, write_json

KIND = "multimodal"
CONFIG_NAME = "multimodal_config.json"
EPISODE_SEED = 8_000_000  # apart from lom.collect's offsets (training, eval 1e6, references 2e6 and 3e6, files ≤ 6e6)
SHARE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Part:
    """One behaviour of the mix: a collection folder, its share of the episodes, a name, the policy's step
    (None: the final policy, lom.collect's expert)."""

    folder: Path
    share: float
    name: str
    policy_step: int | None = None


@dataclass(frozen=True)
class MixConfig:
    env_id: str  # the scoring env, as registered (no env kwargs)
    parts: tuple[Part, ...]
    episodes: int
    out: Path
    seed: int = 0
    reference_episodes: int = 10
    max_episode_steps: int | None = None
    threads: int = 1
    progress: bool = True


@dataclass
class LoadedPart:
    part: Part
    collection: dict  # the part's collect_config.json
    policy_step: int
    actor: TanhGaussianActor
    digest: str  # of the actor's weights: the identity of the policy, wherever its folder now lies

    @property
    def env_kwargs(self) -> dict:
        return self.collection["training"].get("env_kwargs", {})


def output_path(config: MixConfig) -> Path:
    return dataset_path(config.out, config.env_id, KIND)


def episode_counts(shares: list[float], episodes: int) -> np.ndarray:
    """Whole episodes per part, summing to `episodes`: each share's floor, then the largest remainders (earlier
    parts first among equals)."""
    exact = np.asarray(shares, dtype=np.float64) * episodes
    counts = np.floor(exact).astype(np.int64)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: episodes - int(counts.sum())]:
        counts[i] += 1
    return counts


# ---------------------------------------------------------------------------------------------------- parts


def load_part(part: Part, env_id: str, env: gymnasium.Env) -> LoadedPart:
    """The part's policy from its collection's checkpoint, checked against the scoring env."""
    config_path = part.folder / COLLECT_CONFIG_NAME
    if not config_path.is_file():
        raise LOMError(f"{part.folder} holds no {COLLECT_CONFIG_NAME} — pass a folder written by python -m lom.collect")
    collection = json.loads(config_path.read_text())
    training = collection["training"]
    if training["env_id"] != env_id:
        raise LOMError(f"{part.folder} was collected in {training['env_id']}, not {env_id} — every part must come "
                       "from the scoring env's id")
    state = load_checkpoint(part.folder)
    if state is None:
        raise LOMError(f"{part.folder} has no {SAC_CHECKPOINT} — the policies live there; rerun its collection")
    steps = [row["step"] for row in state["log"]["evals"]]
    if part.policy_step is None:
        if state["step"] < training["steps"]:
            raise LOMError(f"{part.folder}'s SAC run stopped at step {state['step']} of {training['steps']} — "
                           "finish it (rerun its lom.collect command) or pick a snapshot with --policy_steps")
        index = len(steps) - 1
    elif part.policy_step in steps:
        index = steps.index(part.policy_step)
    else:
        raise LOMError(f"{part.folder} has no policy snapshot at step {part.policy_step} — its snapshots are at "
                       f"steps {', '.join(map(str, steps))}")
    snapshot = state["log"]["snapshots"][index]
    obs_dim, act_dim = env_dims(env)
    actor = TanhGaussianActor(obs_dim, act_dim, training["sac"]["hidden"])
    try:
        actor.load_state_dict(snapshot)
    except RuntimeError as e:
        raise LOMError(f"{part.folder}'s policy does not fit {env_id} ({e}) — check --max_episode_steps and "
                       "the folder") from None
    digest = hashlib.sha256()
    for key in sorted(snapshot):
        digest.update(key.encode())
        digest.update(snapshot[key].numpy().tobytes())
    return LoadedPart(part, collection, steps[index], actor.eval(), digest.hexdigest()[:16])


def identity(config: MixConfig, parts: list[LoadedPart]) -> dict:
    """The settings that decide the file's contents."""
    return {
        "env_id": config.env_id,
        "max_episode_steps": config.max_episode_steps,
        "episodes": config.episodes,
        "seed": config.seed,
        "reference_episodes": config.reference_episodes,
        "parts": [{"name": p.part.name, "share": p.part.share, "policy_step": p.policy_step,
                   "policy_sha256": p.digest, "collection": p.collection} for p in parts],
    }


def _check_identity(config: MixConfig, wanted: dict) -> None:
    """Write the config, or refuse if OUT holds a mix (config or file) made with other settings."""
    path = config.out / CONFIG_NAME
    saved = json.loads(path.read_text()) if path.exists() else None
    file = output_path(config)
    if saved is None and file.exists():
        with h5py.File(file, "r") as f:
            recorded = f["metadata/multimodal_config"][()] if "metadata/multimodal_config" in f else b"{}"
        saved = json.loads(recorded)
    if saved is not None and saved != wanted:
        raise LOMError(f"{config.out} holds a multimodal dataset made with other settings "
                       f"({_mix_differences(saved, wanted)}) — rerun with the original flags or choose another --out")
    if not path.exists():
        write_json(path, wanted)


def _mix_differences(saved: dict, wanted: dict) -> str:
    """What changed, part by part where the number of parts did not."""
    top = _differences({k: v for k, v in saved.items() if k != "parts"},
                       {k: v for k, v in wanted.items() if k != "parts"})
    before, now = saved.get("parts", []), wanted.get("parts", [])
    if len(before) != len(now):
        parts = f"parts: {len(before)} there, {len(now)} now"
    else:
        parts = ", ".join(filter(None, (_differences(a, b, f"parts[{i}].") for i, (a, b) in enumerate(zip(before, now)))))
    return ", ".join(filter(None, (top, parts)))


# ---------------------------------------------------------------------------------------------------- the data


@dataclass
class References:
    random_return: float
    part_returns: list[float]  # each part's deterministic policy in the scoring env

    @property
    def best(self) -> int:
        return int(np.argmax(self.part_returns))


def measure_references(config: MixConfig, parts: list[LoadedPart], env: gymnasium.Env) -> References:
    """Mean returns in the scoring env, each over `reference_episodes` episodes: the uniform random policy and
    every part's deterministic policy, with lom.collect's reference seeds (seed + RANDOM_REF_SEED, seed +
    EXPERT_REF_SEED) so all parts start from the same states."""
    n = config.reference_episodes
    seed = config.seed + RANDOM_REF_SEED
    random = rollout(env, random_policy(env_dims(env)[1], np.random.default_rng(seed)), seed, episodes=n)
    returns = [float(rollout(env, actor_policy(p.actor, deterministic=True), config.seed + EXPERT_REF_SEED,
                             episodes=n).episode_returns.mean()) for p in parts]
    return References(float(random.episode_returns.mean()), returns)


def episode_modes(config: MixConfig) -> np.ndarray:
    """Each episode's part: the shares' counts, shuffled from the seed."""
    counts = episode_counts([p.share for p in config.parts], config.episodes)
    rng = np.random.default_rng(config.seed + EPISODE_SEED)
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def roll_episodes(config: MixConfig, parts: list[LoadedPart], env: gymnasium.Env
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The rows (D4RL keys plus infos/mode, infos/episode), and per episode its mode, seed and return."""
    modes = episode_modes(config)
    seeds = config.seed + EPISODE_SEED + np.arange(config.episodes, dtype=np.int64)
    chunks, returns = [], []
    for k in tqdm(range(config.episodes), desc="episodes", unit="episode", disable=not config.progress):
        seed = int(seeds[k])
        policy = actor_policy(parts[modes[k]].actor, False, torch.Generator().manual_seed(seed))
        episode = rollout(env, policy, seed, episodes=1)
        length = len(episode.arrays["rewards"])
        chunks.append({**episode.arrays, "infos/mode": np.full(length, modes[k], np.int64),
                       "infos/episode": np.full(length, k, np.int64)})
        returns.append(float(episode.arrays["rewards"].astype(np.float64).sum()))
    arrays = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    return arrays, modes, seeds, np.asarray(returns)


def build(config: MixConfig) -> tuple[Path, bool]:
    """Write the mix unless it exists; (its path, whether this call wrote it)."""
    env = make_online_env(config.env_id, config.max_episode_steps)
    torch.set_num_threads(config.threads)
    parts = [load_part(part, config.env_id, env) for part in config.parts]
    wanted = json.loads(json.dumps(identity(config, parts)))
    config.out.mkdir(parents=True, exist_ok=True)
    _check_identity(config, wanted)
    path = output_path(config)
    if path.exists():
        return path, False
    references = measure_references(config, parts, env)
    arrays, modes, seeds, returns = roll_episodes(config, parts, env)
    write_d4rl_hdf5(path, arrays, _metadata(config, parts, references, modes, seeds, returns, env, wanted))
    return path, True


def _metadata(config: MixConfig, parts: list[LoadedPart], references: References, modes: np.ndarray,
              seeds: np.ndarray, returns: np.ndarray, env: gymnasium.Env, wanted: dict) -> dict:
    strings = h5py.string_dtype()
    count = len(parts)
    return {
        "env_id": config.env_id,
        "kind": KIND,
        "seed": config.seed,
        "max_episode_steps": env.spec.max_episode_steps,
        "env_action_low": env.unwrapped.action_space.low,  # actions are stored in [-1, 1], as lom.collect's
        "env_action_high": env.unwrapped.action_space.high,
        "ref_min_score": references.random_return,
        "ref_max_score": references.part_returns[references.best],
        "best_mode": references.best,
        "mode_names": np.array([p.part.name for p in parts], dtype=strings),
        "mode_sources": np.array([str(p.part.folder) for p in parts], dtype=strings),
        "mode_env_kwargs": np.array([json.dumps(p.env_kwargs, sort_keys=True) for p in parts], dtype=strings),
        "mode_policy_steps": np.array([p.policy_step for p in parts], dtype=np.int64),
        "mode_shares_asked": np.array([p.part.share for p in parts]),
        "mode_shares": np.array([np.mean(modes == k) for k in range(count)]),
        "mode_returns": np.array([returns[modes == k].mean() for k in range(count)]),
        "mode_reference_returns": np.asarray(references.part_returns),
        "episode_modes": modes.astype(np.int64),
        "episode_seeds": seeds,
        "episode_returns": returns,
        "num_episodes": len(returns),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "lom_version": lom.__version__,
        "gymnasium_version": gymnasium.__version__,
        "mujoco_version": mujoco.__version__,
        "torch_version": str(torch.__version__),
        "multimodal_config": json.dumps(wanted, sort_keys=True),
    }


# ---------------------------------------------------------------------------------------------------- reporting


def mode_table(path: Path) -> list[dict]:
    """One row per mode, read from the file: name, objective, policy step, shares asked and got, mean return under
    the scoring objective, its deterministic reference return, and its episodes' shares by running direction (when
    the env's x velocity is known, else None)."""
    with h5py.File(path, "r") as f:
        meta = f["metadata"]
        env_id = meta["env_id"][()].decode()
        text = [[s.decode() for s in meta[key][()]] for key in ("mode_names", "mode_env_kwargs")]
        modes = meta["episode_modes"][()]
        try:
            labels = directions.episode_directions(env_id, f["observations"][()], f["infos/episode"][()])
        except ValueError:
            labels = None
        rows = []
        for k, (name, kwargs) in enumerate(zip(*text)):
            ran = None if labels is None else {directions.DIRECTION_NAMES[d]: float(np.mean(labels[modes == k] == d))
                                               for d in directions.DIRECTION_NAMES}
            rows.append({"mode": k, "name": name, "env_kwargs": json.loads(kwargs),
                         "policy_step": int(meta["mode_policy_steps"][k]),
                         "share_asked": float(meta["mode_shares_asked"][k]), "share": float(meta["mode_shares"][k]),
                         "mean_return": float(meta["mode_returns"][k]),
                         "reference_return": float(meta["mode_reference_returns"][k]), "directions": ran})
    return rows


def summary(path: Path, written: bool) -> str:
    with h5py.File(path, "r") as f:
        meta = f["metadata"]
        env_id, rows = meta["env_id"][()].decode(), len(f["rewards"])
        episodes, best = int(meta["num_episodes"][()]), int(meta["best_mode"][()])
        low, high = float(meta["ref_min_score"][()]), float(meta["ref_max_score"][()])
    lines = [f"{path} ({'written' if written else 'existing'}): {rows} rows, {episodes} episodes scored by "
             f"{env_id}; references (score 0 / 100): random {low:.1f}, best mode {high:.1f}",
             f"  {'mode':<4} {'name':<24} {'objective':<28} {'step':>8} {'share':>6} {'mean return':>11} "
             f"{'deterministic':>13}  ran"]
    table = mode_table(path)
    for row in table:
        objective = format_env_kwargs(row["env_kwargs"]) or "(the env's own)"
        ran = ", ".join(f"{name} {share:.0%}" for name, share in (row["directions"] or {}).items() if share) or "—"
        lines.append(f"  {row['mode']:<4} {row['name']:<24} {objective:<28} {row['policy_step']:>8} "
                     f"{row['share']:>6.1%} {row['mean_return']:>11.1f} {row['reference_return']:>13.1f}  {ran}")
    rarest = all(row["share"] > table[best]["share"] for row in table if row["mode"] != best)
    lines.append(f"  best mode (highest deterministic return, score 100): {best} ({table[best]['name']}), the rarest: "
                 f"{'yes' if rarest else 'no'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m lom.collect.multimodal", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", required=True, help="the scoring env id, as registered (e.g. HalfCheetah-v4): its "
                                                "rewards are the file's")
    p.add_argument("--parts", required=True, nargs="+", type=Path, metavar="DIR",
                   help="two or more lom.collect output folders in that env, one per behaviour")
    p.add_argument("--shares", required=True, nargs="+", type=float, metavar="SHARE",
                   help="each part's share of the episodes, in --parts order, summing to 1")
    p.add_argument("--names", nargs="+", default=None, metavar="NAME", help="a name per part (default: folder names)")
    p.add_argument("--policy_steps", nargs="+", default=None, metavar="STEP",
                   help="per part, the SAC step of the policy snapshot to use, or 'final' (default: final)")
    p.add_argument("--episodes", type=int, required=True, help="whole episodes in the file, shared out by --shares")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode order and of every rollout")
    p.add_argument("--reference_episodes", type=int, default=10, help="episodes measuring each reference return")
    p.add_argument("--max_episode_steps", type=int, default=None, help="override the env's time limit")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> MixConfig:
    count = len(args.parts)
    if count < 2:
        raise LOMError("--parts needs two or more collection folders — a mix of one behaviour is not multimodal")
    for flag in ("shares", "names", "policy_steps"):
        given = getattr(args, flag)
        if given is not None and len(given) != count:
            raise LOMError(f"--{flag} gives {len(given)} values for {count} --parts — give one per part")
    shares = args.shares
    if min(shares) <= 0 or abs(sum(shares) - 1) > SHARE_TOLERANCE:
        raise LOMError(f"--shares must be positive and sum to 1 (got {' '.join(map(str, shares))}) — fix the flag")
    names = args.names or [folder.resolve().name for folder in args.parts]
    if len(set(names)) != count:
        raise LOMError(f"the parts' names repeat ({' '.join(names)}) — pass --names with one distinct name each")
    steps = [None if text == "final" else _step(text) for text in (args.policy_steps or ["final"] * count)]
    if args.episodes < count:
        raise LOMError(f"--episodes must be at least the number of parts ({count}) — pass more episodes")
    for name in ("reference_episodes", "threads"):
        if getattr(args, name) < 1:
            raise LOMError(f"--{name} must be at least 1 (got {getattr(args, name)}) — pass a positive number")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        raise LOMError("--max_episode_steps must be at least 1 — fix the flag")
    total = sum(shares)
    counts = episode_counts([share / total for share in shares], args.episodes)
    if counts.min() < 1:
        raise LOMError(f"--episodes {args.episodes} leaves a part with no episode (counts {' '.join(map(str, counts))})"
                       " — pass more episodes or larger shares")
    parts = tuple(Part(folder, share / total, name, step)
                  for folder, share, name, step in zip(args.parts, shares, names, steps))
    return MixConfig(args.env, parts, args.episodes, args.out, args.seed, args.reference_episodes,
                     args.max_episode_steps, args.threads, not args.no_progress)


def _step(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise LOMError(f"--policy_steps takes SAC steps or 'final', got '{text}' — fix the flag") from None


def main(argv: list[str] | None = None) -> int:
    """`python -m lom.collect.multimodal ...`: the exit status; a user error is one line on stderr."""
    return cli_status(run, argv, interrupted="rerun the same command to start the rollouts again")


def run(argv: list[str] | None) -> None:
    config = config_from_args(build_parser().parse_args(argv))
    with writing(f"the multimodal dataset into {config.out}", "pass an --out folder you can write to"):
        path, written = build(config)
    print(summary(path, written))


if __name__ == "__main__":
    sys.exit(main())
