"""Make D4RL-style datasets in any gymnasium continuous-control env: `python -m lom.collect --env ENV --out DIR`.

Like D4RL: SAC is trained online, then DIR receives six D4RL-format HDF5 files,
  <env>_full-replay.hdf5    the whole replay buffer (every training step),
  <env>_medium-replay.hdf5  the replay buffer up to the step of the medium policy,
  <env>_medium.hdf5         rollouts of the medium policy (stochastic samples),
  <env>_expert.hdf5         rollouts of the final policy (stochastic samples),
  <env>_medium-expert.hdf5  the medium file's rows, then the expert file's (as D4RL built its medium-expert),
  <env>_random.hdf5         rollouts of the uniform random policy,
with <env> the lower-cased env id (e.g. halfcheetah-v4_medium.hdf5). The medium policy is the first evaluation
snapshot of a trained policy (taken after SAC's first update) whose return gets `medium_fraction` of the way from
the random policy's return to the final policy's.
Every file carries `metadata/ref_min_score` (random-policy mean return) and `metadata/ref_max_score` (final policy,
deterministic, mean return), so `train.py --env_name ENV --dataset_path FILE` reports normalised scores.
`--env_kwargs KEY=VALUE ...` gives the env's constructor keyword arguments, the objective SAC learns and the files
are scored by (e.g. forward_reward_weight=-1: HalfCheetah running backwards; lom.collect.multimodal mixes such runs).
Rerunning the same command resumes an interrupted collection; finished files are never rewritten. The last two
files need no SAC: over a collection made before they existed, the same command writes them from its files.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium
import h5py
import mujoco
import numpy as np
import torch

import lom
from lom.cli import OneLineParser
from lom.devices import select_device
from lom.errors import LOMError, cli_status, writing
from lom.io import atomic_path, write_json
from lom.io import write_d4rl_hdf5
from lom.collect.sac import (
    EVAL_CSV_NAME,
    EvalRow,
    OnlineConfig,
    OnlineTrainer,
    SACConfig,
    TanhGaussianActor,
    TrainedSAC,
    actor_policy,
    env_dims,
    make_online_env,
    mark_cut_episode,
    online_config_dict,
    random_policy,
    rollout,
)

# Files cut from the SAC run (its buffer and policy snapshots), then files made from those files or from the env alone.
SAC_KINDS = ("full-replay", "medium-replay", "medium", "expert")
DERIVED_KINDS = ("medium-expert", "random")
KINDS = SAC_KINDS + DERIVED_KINDS
CONFIG_NAME = "collect_config.json"
REFERENCES_NAME = "references.json"
RETURNS_PNG_NAME = "returns.png"
# Offsets keep the seeds of the different rollouts apart from each other and from training (seed) and eval.
RANDOM_REF_SEED, EXPERT_REF_SEED, MEDIUM_SEED, EXPERT_SEED, RANDOM_SEED = (
    2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000)
# D4RL-format keys for the replay buffer's fields.
BUFFER_KEYS = {
    "obs": "observations",
    "actions": "actions",
    "rewards": "rewards",
    "next_obs": "next_observations",
    "terminals": "terminals",
    "timeouts": "timeouts",
}


@dataclass(frozen=True)
class CollectConfig:
    """A collection: the SAC run plus how the four datasets are cut from it."""

    training: OnlineConfig
    out: Path
    transitions: int = 1_000_000  # rows of the medium, expert and random files
    medium_fraction: float = 1 / 3
    reference_episodes: int = 10
    checkpoint_every: int = 50_000
    device: str = "cpu"
    threads: int = 1
    progress: bool = True

    def identity(self) -> dict:
        """The settings that decide the files' contents; a resumed run must keep them."""
        return {
            "training": online_config_dict(self.training),
            "transitions": self.transitions,
            "medium_fraction": self.medium_fraction,
            "reference_episodes": self.reference_episodes,
        }


@dataclass(frozen=True)
class References:
    """Mean returns used as D4RL's REF_MIN_SCORE / REF_MAX_SCORE for the files of this collection."""

    random_return: float
    random_return_std: float
    expert_return: float
    expert_return_std: float
    episodes: int


@dataclass
class CollectResult:
    files: dict[str, Path]
    references: References
    evals: list[EvalRow]
    medium_step: int
    resumed_from_step: int  # 0: trained from scratch; == steps: training was already complete
    written: list[str] = field(default_factory=list)  # kinds written by this call (others existed already)

    @property
    def wall_time_s(self) -> float:
        """Training wall time summed over every session of the run."""
        return self.evals[-1].wall_time_s


def dataset_path(out: Path, env_id: str, kind: str) -> Path:
    return Path(out) / f"{env_id.lower().replace('/', '-')}_{kind}.hdf5"


def collect(config: CollectConfig) -> CollectResult:
    """Train (or resume) SAC unless its files exist, then write whichever datasets and the returns histogram are
    missing."""
    # Checks the env before any writing.
    env = make_online_env(config.training.env_id, config.training.max_episode_steps, config.training.env_kwargs)
    _check_config(config)
    torch.set_num_threads(config.threads)
    files = {kind: dataset_path(config.out, config.training.env_id, kind) for kind in KINDS}
    sac_products = [*(files[kind] for kind in SAC_KINDS),
                    *(config.out / name for name in (REFERENCES_NAME, EVAL_CSV_NAME))]
    if all(path.exists() for path in sac_products):
        result = _finished_result(config, files)
    else:
        trainer = OnlineTrainer(config.training, config.out, config.device, config.checkpoint_every)
        trained = trainer.run(progress=config.progress)
        references = _references(config, trained, env)
        medium_index = select_medium(
            trained.log.evals, references.random_return, config.medium_fraction, config.training.learning_starts
        )
        written = []
        for kind in SAC_KINDS:
            if not files[kind].exists():
                write_d4rl_hdf5(files[kind], *_dataset(config, trained, references, kind, medium_index, env))
                written.append(kind)
        evals = trained.log.evals
        result = CollectResult(files, references, evals, evals[medium_index].step, trained.resumed_from_step, written)
    for kind in DERIVED_KINDS:
        if not files[kind].exists():
            write_d4rl_hdf5(files[kind], *_derived_dataset(config, result, kind, env))
            result.written.append(kind)
    if result.written or not (config.out / RETURNS_PNG_NAME).exists():
        write_returns_png(config.out / RETURNS_PNG_NAME, files, result.references)
    return result


def _check_config(config: CollectConfig) -> None:
    path = config.out / CONFIG_NAME
    identity = json.loads(json.dumps(config.identity()))  # as it reads back from JSON
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != identity:
            diff = _differences(saved, identity)
            raise LOMError(
                f"{config.out} holds a collection made with other settings ({diff}) — rerun with the original flags "
                "or choose another --out"
            )
    else:
        write_json(path, identity)


def _differences(saved: dict, wanted: dict, prefix: str = "") -> str:
    parts = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            parts.append(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            parts.append(f"{prefix}{key}: {a} there, {b} now")
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------------- policies


def _snapshot_actor(config: CollectConfig, snapshot: dict, env: gymnasium.Env) -> TanhGaussianActor:
    actor = TanhGaussianActor(*env_dims(env), config.training.sac.hidden).to(config.device)
    actor.load_state_dict(snapshot)
    return actor.eval()


def _references(config: CollectConfig, trained: TrainedSAC, env: gymnasium.Env) -> References:
    """Random and final-policy mean returns, measured once and kept in references.json."""
    path = config.out / REFERENCES_NAME
    if path.exists():
        return References(**json.loads(path.read_text()))
    training = config.training
    rng = np.random.default_rng(training.seed + RANDOM_REF_SEED)
    n = config.reference_episodes
    random_returns = rollout(env, random_policy(env_dims(env)[1], rng), training.seed + RANDOM_REF_SEED, episodes=n)
    expert = actor_policy(trained.agent.actor, deterministic=True)
    expert_returns = rollout(env, expert, training.seed + EXPERT_REF_SEED, episodes=n)
    r, e = random_returns.episode_returns, expert_returns.episode_returns
    references = References(float(r.mean()), float(r.std()), float(e.mean()), float(e.std()), n)
    write_json(path, dataclasses.asdict(references))
    return references


def select_medium(evals: list[EvalRow], random_return: float, fraction: float, learning_starts: int) -> int:
    """Index of the first eval of a trained policy whose return reaches `fraction` of the way from random to the
    final policy.

    Measured from the random policy's return rather than from zero, so that environments with negative returns
    work too. Snapshots up to `learning_starts` are of the untrained actor: their deterministic action is near
    zero, which scores high where standing still earns a survival bonus (Ant-v4: ~1,000 a step-limited episode),
    so they are never the medium policy. Falls back to the final policy if it is no better than random.
    """
    threshold = random_return + fraction * (evals[-1].return_mean - random_return)
    for i, row in enumerate(evals):
        if row.step > learning_starts and row.return_mean >= threshold:
            return i
    return len(evals) - 1


# ---------------------------------------------------------------------------------------------------- datasets


def _dataset(
    config: CollectConfig, trained: TrainedSAC, references: References, kind: str, medium_index: int, env: gymnasium.Env
) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of one file."""
    training = config.training
    evals = trained.log.evals
    if kind in ("full-replay", "medium-replay"):
        end = training.steps if kind == "full-replay" else evals[medium_index].step
        arrays, returns = _replay_rows(trained, end)
        policy_step = end
    else:
        index = medium_index if kind == "medium" else len(evals) - 1
        seed = training.seed + (MEDIUM_SEED if kind == "medium" else EXPERT_SEED)
        generator = torch.Generator(config.device).manual_seed(seed)
        policy = actor_policy(_snapshot_actor(config, trained.log.snapshots[index], env), False, generator)
        result = rollout(env, policy, seed, steps=config.transitions, progress_desc=kind if config.progress else None)
        arrays, returns, policy_step = result.arrays, result.episode_returns, evals[index].step
    return arrays, _metadata(config, references, kind, policy_step, returns, env)


def _replay_rows(trained: TrainedSAC, end: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rows = trained.buffer.numpy_rows(end)
    arrays = {BUFFER_KEYS[name]: value for name, value in rows.items()}
    arrays["terminals"] = arrays["terminals"] > 0.5
    mark_cut_episode(arrays)
    ends = np.asarray(trained.log.episode_end_steps)
    returns = np.asarray(trained.log.episode_returns, dtype=np.float64)[ends <= end]
    return arrays, returns


def _derived_dataset(config: CollectConfig, result: CollectResult, kind: str, env: gymnasium.Env
                     ) -> tuple[dict[str, np.ndarray], dict]:
    """medium-expert: the medium file's rows followed by the expert file's; random: `transitions` rows of the
    uniform random policy. Neither needs the SAC run, only its files (and the env)."""
    if kind == "medium-expert":
        parts = [_read_file(result.files[name]) for name in ("medium", "expert")]
        arrays = {key: np.concatenate([part[0][key] for part in parts]) for key in parts[0][0]}
        returns, policy_step = np.concatenate([part[1] for part in parts]), _policy_step(result.files["expert"])
    else:
        seed = config.training.seed + RANDOM_SEED
        policy = random_policy(env_dims(env)[1], np.random.default_rng(seed))
        rolled = rollout(env, policy, seed, steps=config.transitions, progress_desc=kind if config.progress else None)
        arrays, returns, policy_step = rolled.arrays, rolled.episode_returns, 0
    return arrays, _metadata(config, result.references, kind, policy_step, returns, env)


def _read_file(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A collected file's D4RL arrays and its complete episodes' returns."""
    with h5py.File(path, "r") as f:
        arrays = {key: f[key][()] for key in BUFFER_KEYS.values()}
        return arrays, f["metadata/episode_returns"][()]


def _policy_step(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["metadata/policy_step"][()])


def _metadata(
    config: CollectConfig, references: References, kind: str, policy_step: int, returns: np.ndarray, env: gymnasium.Env
) -> dict:
    training = config.training
    # Only when given: files of the env's own objective keep the metadata they always had.
    objective = {"env_kwargs": json.dumps(training.env_kwargs, sort_keys=True)} if training.env_kwargs else {}
    stats = {name: float(fn(returns)) if len(returns) else float("nan") for name, fn in
             (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))}
    return {
        "env_id": training.env_id,
        **objective,
        "kind": kind,
        "seed": training.seed,
        "sac_steps": training.steps,
        # replay files: the last training step included; medium/expert: the training step of the policy
        # (medium-expert: the expert's; random: 0).
        "policy_step": policy_step,
        "max_episode_steps": env.spec.max_episode_steps,
        # Stored actions are the policy's, in [-1, 1]; the env maps them linearly onto these bounds.
        "env_action_low": env.unwrapped.action_space.low,
        "env_action_high": env.unwrapped.action_space.high,
        "ref_min_score": references.random_return,
        "ref_max_score": references.expert_return,
        "episode_returns": returns,
        "num_episodes": len(returns),
        **{f"return_{name}": value for name, value in stats.items()},
        "lom_version": lom.__version__,
        "gymnasium_version": gymnasium.__version__,
        "mujoco_version": mujoco.__version__,
        "torch_version": str(torch.__version__),
        "collect_config": json.dumps(config.identity(), sort_keys=True),
    }


def read_episode_returns(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["metadata/episode_returns"][()]


def write_returns_png(path: Path, files: dict[str, Path], references: References) -> None:
    """One histogram of complete-episode returns per dataset, with the two reference returns marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns_by_kind = {kind: read_episode_returns(file) for kind, file in files.items()}
    every = np.concatenate([*returns_by_kind.values(), [references.random_return, references.expert_return]])
    bins = np.linspace(every.min(), every.max(), 41)  # shared bins so the panels compare at a glance
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), sharex=True)
    for ax, (kind, returns) in zip(axes.flat, returns_by_kind.items()):
        ax.hist(returns, bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(references.random_return, color="tab:red", linestyle="--", label="random policy")
        ax.axvline(references.expert_return, color="tab:green", linestyle="--", label="expert (deterministic)")
        mean = f", mean {returns.mean():.0f}" if len(returns) else ""
        ax.set(title=f"{kind}: {len(returns)} episodes{mean}", xlabel="episode return", ylabel="episodes")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Episode returns per dataset ({path.parent.name})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- reporting


def _finished_result(config: CollectConfig, files: dict[str, Path]) -> CollectResult:
    """Everything is on disk already: rebuild the result from the run folder, without loading the checkpoint."""
    references = References(**json.loads((config.out / REFERENCES_NAME).read_text()))
    evals = read_eval_csv(config.out / EVAL_CSV_NAME)
    return CollectResult(files, references, evals, _policy_step(files["medium"]), config.training.steps)


def read_eval_csv(path: Path) -> list[EvalRow]:
    with open(path, newline="") as f:
        return [
            EvalRow(int(row["step"]), float(row["return_mean"]), float(row["return_std"]), float(row["wall_time_s"]))
            for row in csv.DictReader(f)
        ]


def summary(result: CollectResult) -> str:
    refs = result.references
    best = max(result.evals, key=lambda row: row.return_mean)
    lines = [
        f"SAC: final eval return {result.evals[-1].return_mean:.1f} at step {result.evals[-1].step}, best "
        f"{best.return_mean:.1f} at step {best.step}, training wall time {result.wall_time_s / 60:.1f} min",
        f"references: random {refs.random_return:.1f} ± {refs.random_return_std:.1f}, expert "
        f"{refs.expert_return:.1f} ± {refs.expert_return_std:.1f} ({refs.episodes} episodes each)",
        f"medium policy: snapshot of step {result.medium_step}",
    ]
    for kind, path in result.files.items():
        with h5py.File(path, "r") as f:
            rows, episodes = len(f["rewards"]), int(f["metadata/num_episodes"][()])
            mean = float(f["metadata/return_mean"][()])
        state = "written" if kind in result.written else "existing"
        lines.append(f"  {path} ({state}): {rows} rows, {episodes} complete episodes, mean return {mean:.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m lom.collect", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", required=True, help="gymnasium env id with a Box action space, e.g. HalfCheetah-v4")
    p.add_argument("--out", required=True, type=Path, help="output folder (also holds checkpoints; rerun to resume)")
    p.add_argument("--steps", type=int, default=1_000_000, help="SAC environment steps = rows of full-replay")
    p.add_argument("--transitions", type=int, default=1_000_000, help="rows of the medium, expert and random files")
    p.add_argument("--seed", type=int, default=0, help="seed of SAC, its env and the datasets' rollouts")
    p.add_argument("--medium_fraction", type=float, default=1 / 3,
                   help="medium = first snapshot this fraction of the way from random to final return (default: "
                        "%(default).4g)")
    p.add_argument("--learning_starts", type=int, default=10_000, help="uniformly random first steps")
    p.add_argument("--eval_every", type=int, default=10_000, help="steps between evaluations / policy snapshots")
    p.add_argument("--eval_episodes", type=int, default=10, help="episodes per evaluation")
    p.add_argument("--reference_episodes", type=int, default=10, help="episodes measuring the reference returns")
    p.add_argument("--max_episode_steps", type=int, default=None, help="override the env's time limit")
    p.add_argument("--env_kwargs", nargs="+", default=None, metavar="KEY=VALUE",
                   help="keyword arguments of the env's constructor, the objective SAC learns (e.g. "
                        "forward_reward_weight=-1 runs HalfCheetah-v4 backwards); values read as int, float, "
                        "true/false or text")
    p.add_argument("--checkpoint_every", type=int, default=50_000, help="steps between checkpoints")
    p.add_argument("--hidden", type=int, default=SACConfig.hidden, help="SAC: units per hidden layer")
    p.add_argument("--batch_size", type=int, default=SACConfig.batch_size, help="SAC: batch size")
    p.add_argument("--lr", type=float, default=SACConfig.lr, help="SAC: Adam learning rate")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    positive = ("steps", "transitions", "eval_every", "eval_episodes", "reference_episodes", "checkpoint_every",
                "hidden", "batch_size", "threads")
    for name in positive:
        if getattr(args, name) < 1:
            raise LOMError(f"--{name} must be at least 1 (got {getattr(args, name)}) — pass a positive number")
    if args.learning_starts < 0 or (args.max_episode_steps is not None and args.max_episode_steps < 1):
        raise LOMError("--learning_starts must be >= 0 and --max_episode_steps >= 1 — fix the flag")
    if not 0.0 < args.medium_fraction <= 1.0 or not args.lr > 0:
        raise LOMError("--medium_fraction must lie in (0, 1] and --lr be positive — fix the flag")
    env_kwargs = parse_env_kwargs(args.env_kwargs or [])
    device = str(select_device(args.device))
    sac = SACConfig(hidden=args.hidden, batch_size=args.batch_size, lr=args.lr)
    training = OnlineConfig(
        env_id=args.env,
        steps=args.steps,
        seed=args.seed,
        learning_starts=args.learning_starts,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        max_episode_steps=args.max_episode_steps,
        sac=sac,
        env_kwargs=env_kwargs,
    )
    return CollectConfig(
        training=training,
        out=args.out,
        transitions=args.transitions,
        medium_fraction=args.medium_fraction,
        reference_episodes=args.reference_episodes,
        checkpoint_every=args.checkpoint_every,
        device=device,
        threads=args.threads,
        progress=not args.no_progress,
    )


# gymnasium.make's own parameters: passed through --env_kwargs they would not reach the env's constructor.
_MAKE_PARAMETERS = {name for name in inspect.signature(gymnasium.make).parameters if name not in ("id", "kwargs")}


def parse_env_kwargs(items: list[str]) -> dict:
    """KEY=VALUE strings as a dict; each value the first of int, float, bool (true/false), text that reads it."""
    kwargs: dict = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier() or not text.strip():
            raise LOMError(f"--env_kwargs takes KEY=VALUE pairs, got '{item}' — write e.g. forward_reward_weight=-1")
        if key in kwargs:
            raise LOMError(f"--env_kwargs names {key} twice — give each keyword once")
        if key in _MAKE_PARAMETERS:
            raise LOMError(f"--env_kwargs cannot set {key}, a parameter of gymnasium.make — use --{key} if there is "
                           "one")
        value = _parse_value(text.strip())
        if isinstance(value, float) and not np.isfinite(value):
            raise LOMError(f"--env_kwargs {item}: the value must be a finite number — fix the flag")
        kwargs[key] = value
    return kwargs


def _parse_value(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    """`python -m lom.collect ...`: the exit status; a user error is one line on stderr."""
    return cli_status(run, argv, interrupted="rerun the same command to resume from the last checkpoint")


def run(argv: list[str] | None) -> None:
    config = config_from_args(build_parser().parse_args(argv))
    with writing(f"the collection into {config.out}", "pass an --out folder you can write to"):
        result = collect(config)
    print(summary(result))

