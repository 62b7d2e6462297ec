"""Our IQL and TD3BC against d3rlpy's (a reference implementation) on one collected D4RL-format file, same schedule.

    python benchmarks/reference_baselines.py --env_name Walker2d-v4 \
        --dataset_path ~/lom_data/collect_walker2d/walker2d-v4_full-replay.hdf5 --agent IQL --seeds 0 1
    python benchmarks/reference_baselines.py --table_only          # rebuild report.md and curves.png from the runs

What is held equal, so that a difference between the two columns is a difference between the implementations:
  - the data: d3rlpy gets exactly lom's transitions (the same rows dropped at time-outs and episode cuts; the run
    checks d3rlpy's transition count and reward sum against lom's), with states already standardised by lom's
    ObservationNormalizer (dataset mean, std floored at 1e-3) and rewards treated as lom treats them for the agent
    (IQL: × 1000 / (highest − lowest episode return), `return_range_scale`, decided by `TrainConfig.scales_rewards`;
    TD3BC: unscaled), so d3rlpy runs with no observation or reward scaler of its own;
  - the settings: each paper's (REFERENCE_SETTINGS; d3rlpy's defaults already are, but they are set explicitly),
    with IQL's actor learning rate on a cosine decay over the run's steps, as ours;
  - the schedule: the full-replay study's (50,000 steps, an evaluation every 5,000 steps of 10 episodes of the
    deterministic policy), and the evaluation itself: d3rlpy's greedy policy is saved as TorchScript at each
    evaluation step and scored here by lom.training.evaluation.evaluate with ours' episode seeds (seed · 10,000 + step), in the
    same env (gymnasium's Walker2d-v4 / Hopper-v4 of this environment, not the venv's gymnasium 1.0.0);
  - one CPU thread per process, one training process at a time.

d3rlpy 2.8.1 pins gymnasium 1.0.0, so it lives in its own virtual environment (`--venv`, default .venv-bench/, made
from requirements-bench.txt when missing); this script re-runs itself there for the d3rlpy part (`_d3rlpy`), and our
package never imports d3rlpy.

"Ours" are the full-replay study's runs where it has the seed (results/full_replay/LOM/default/<dataset>/<agent>/,
reused when their schedule matches) and otherwise `train.py --agent ... --dataset_path ...` runs made here.
Each run's config.json and metrics.csv go to <out>/{lom,d3rlpy}/<dataset>/<agent>/seed<k>/; d3rlpy's IQL runs
also write diagnostics.csv (the advantage weights on fixed dataset rows every 1,000 steps, see `weight_stats`).
Policies, inputs and train.py's checkpoints stay in --scratch.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "results" / "reference_baselines"
DEFAULT_STUDY = REPO / "results" / "full_replay" / "LOM" / "default"
DEFAULT_VENV = REPO / ".venv-bench"
REQUIREMENTS = REPO / "requirements-bench.txt"
AGENTS = ("IQL", "TD3BC")
IMPLEMENTATIONS = ("lom", "d3rlpy")
# The full-replay study's schedule (results/full_replay/README.md).
SCHEDULE = {"training_steps": 50_000, "eval_every": 5_000, "eval_episodes": 10}
# lom.training.trainer.EVAL_SEED_STRIDE: evaluation at `step` of seed k resets episode i with seed k · 10,000 + step + i.
EVAL_SEED_STRIDE = 10_000
# d3rlpy's IQL runs log the advantage weights this often, on DIAGNOSTIC_ROWS fixed rows of the dataset.
DIAGNOSTIC_EVERY = 1_000
DIAGNOSTIC_ROWS = 100 * 256
DIAGNOSTIC_SEED = 12345
# Each paper's settings, named as d3rlpy names them (both are also lom's, lom/agents/configs.py IQLConfig and
# TD3BCConfig); IQL's actor additionally decays its learning rate on a cosine over the run's steps.
REFERENCE_SETTINGS = {
    "IQL": {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4, "batch_size": 256, "gamma": 0.99,
            "tau": 0.005, "n_critics": 2, "expectile": 0.7, "weight_temp": 3.0, "max_weight": 100.0},
    "TD3BC": {"actor_learning_rate": 3e-4, "critic_learning_rate": 3e-4, "batch_size": 256, "gamma": 0.99,
              "tau": 0.005, "n_critics": 2, "target_smoothing_sigma": 0.2, "target_smoothing_clip": 0.5,
              "alpha": 2.5, "update_actor_interval": 2},
}
HIDDEN = (256, 256)
# IQL's weights, for the diagnostics: exp(β·A) clipped at C.
IQL_BETA, IQL_WEIGHT_CLIP = 3.0, 100.0
# The last evaluations averaged in the table's second score (30k-50k of the study's schedule).
LAST_EVALS = 5


# -- what d3rlpy is handed: lom's transitions, standardisation and reward treatment -----------------------------
@dataclass
class Inputs:
    """The arrays d3rlpy trains on and the facts the run records and checks."""

    observations: np.ndarray  # standardised with lom's statistics, every row of the file
    actions: np.ndarray
    rewards: np.ndarray  # as lom's agent sees them (scaled or not)
    terminals: np.ndarray  # d3rlpy's episode flags: an episode ends at a terminal or a timeout row
    timeouts: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    reward_scale: float
    transitions: int  # lom's transition count, which d3rlpy's must equal
    reward_sum: float  # sum of the (scaled) rewards of lom's transitions, which d3rlpy's must equal


def d3rlpy_episode_flags(arrays: dict[str, np.ndarray], max_episode_steps: int | None) -> tuple[np.ndarray, np.ndarray]:
    """d3rlpy's (terminals, timeouts) for the file's rows such that d3rlpy keeps exactly lom's transitions.

    d3rlpy cuts an episode after each row flagged terminal or timeout and keeps every row of an episode as a
    transition to the next row except the last row of an episode that did not terminate (and drops the rows after
    the last flag). lom (lom.data.transitions.build_transitions) keeps a row when its next row continues its episode,
    or when it is terminal and not a time-out. So: d3rlpy terminal = lom's kept terminal rows, d3rlpy timeout = every
    row lom drops (time-outs, terminal-and-time-out rows, unflagged episode cuts, a last row that is not terminal).
    """
    from lom.data.transitions import _same_states, _timeouts_from_length  # build_transitions' own helpers

    obs, terminals = arrays["observations"], arrays["terminals"].astype(bool)
    n = len(obs)
    timeouts = (arrays["timeouts"].astype(bool) if "timeouts" in arrays
                else _timeouts_from_length(terminals, max_episode_steps, "file"))
    continues = np.append(np.ones(n - 1, dtype=bool), False) & ~terminals & ~timeouts
    if "next_observations" in arrays:
        continues[:-1] &= _same_states(arrays["next_observations"][:-1], obs[1:])
    kept_terminal = terminals & ~timeouts
    keep = continues | kept_terminal
    return kept_terminal, ~keep


def d3rlpy_kept_rows(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """The rows d3rlpy turns into transitions, by its rule (EpisodeGenerator + transition_count), in its order."""
    ends = np.flatnonzero(terminals | timeouts)
    rows = np.arange(len(terminals))
    inside = rows <= (ends[-1] if len(ends) else -1)
    return rows[inside & ~timeouts]


def prepare_inputs(env_name: str, dataset_path: str, agent: str) -> tuple[Inputs, object, object]:
    """(inputs, lom's dataset spec, lom's transitions) for `agent` on the file, computed by lom's own code."""
    from lom.data.batches import ObservationNormalizer
    from lom.config import RETURN_RANGE_TARGET, TrainConfig
    from lom.data import load_transitions, resolve_dataset
    from lom.data.d4rl_file import read_d4rl_arrays
    from lom.data.transitions import return_range_scale

    spec = resolve_dataset(env_name, dataset_path)
    transitions = load_transitions(spec, progress=False)
    normalizer = ObservationNormalizer.fit(transitions.observations, True)
    scales = TrainConfig(env_name=env_name, dataset_path=dataset_path, agent=agent).scales_rewards(spec.table_name,
                                                                                                   spec.env_id)
    scale = return_range_scale(transitions, RETURN_RANGE_TARGET) if scales else 1.0
    arrays = read_d4rl_arrays(spec.path)
    terminals, timeouts = d3rlpy_episode_flags(arrays, spec.max_episode_steps)
    mean, std = normalizer.mean.numpy(), normalizer.std.numpy()
    rewards = (arrays["rewards"].astype(np.float32) * np.float32(scale)).astype(np.float32)
    inputs = Inputs(
        observations=((arrays["observations"] - mean) / std).astype(np.float32),
        actions=arrays["actions"].astype(np.float32), rewards=rewards, terminals=terminals, timeouts=timeouts,
        obs_mean=mean, obs_std=std, reward_scale=float(scale), transitions=len(transitions),
        reward_sum=float(np.sum(transitions.rewards.astype(np.float64) * np.float32(scale))))
    return inputs, spec, transitions


def episode_metadata(transitions) -> dict[str, np.ndarray]:
    """Per lom transition: its episode's return (unscaled), its step within the episode, and for episodes that end
    in a terminal (a fall, in Walker2d and Hopper) the steps left to it (−1 for episodes that do not)."""
    from lom.data.transitions import _same_states

    ends = transitions.terminals.astype(bool)
    ends[:-1] |= ~_same_states(transitions.next_observations[:-1], transitions.observations[1:])
    ends[-1] = True
    episode = np.concatenate([[0], np.cumsum(ends[:-1])])
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    returns = np.add.reduceat(transitions.rewards.astype(np.float64), starts)
    lengths = np.diff(np.append(starts, len(ends)))
    step = np.arange(len(ends)) - starts[episode]
    fell = transitions.terminals.astype(bool)[np.flatnonzero(ends)]
    to_fall = np.where(fell[episode], lengths[episode] - 1 - step, -1)
    return {"episode_return": returns[episode], "episode": episode, "step_in_episode": step,
            "steps_to_fall": to_fall, "episode_returns": returns}


def diagnostic_rows(transitions, normalizer_mean: np.ndarray, normalizer_std: np.ndarray) -> dict[str, np.ndarray]:
    """DIAGNOSTIC_ROWS fixed transitions (same for every run and both implementations) with their metadata."""
    meta = episode_metadata(transitions)
    rows = np.random.default_rng(DIAGNOSTIC_SEED).integers(len(transitions), size=DIAGNOSTIC_ROWS)
    # Episode return percentile of each row's episode, among episodes (not rows).
    ep_returns = np.sort(meta["episode_returns"])
    percentile = np.searchsorted(ep_returns, meta["episode_return"][rows], side="right") / len(ep_returns)
    return {"diag_obs": ((transitions.observations[rows] - normalizer_mean) / normalizer_std).astype(np.float32),
            "diag_act": transitions.actions[rows].astype(np.float32),
            "diag_return": meta["episode_return"][rows], "diag_return_percentile": percentile,
            "diag_step": meta["step_in_episode"][rows], "diag_to_fall": meta["steps_to_fall"][rows]}


def weight_stats(q: np.ndarray, v: np.ndarray, meta: dict[str, np.ndarray], beta: float = IQL_BETA,
                 clip: float = IQL_WEIGHT_CLIP, batch: int = 256) -> dict[str, float]:
    """IQL's actor weights w = min(exp(β·(Q − V)), C) on the diagnostic rows, and where their mass goes.

    ess_frac: the effective sample size (Σw)² / Σw² of each batch of `batch` rows over the batch size, averaged over
    batches (1: every row teaches equally; 1/256: one row per batch does all the teaching). *_mass: the share of
    Σw on rows of a kind, beside *_rows, the share of rows of that kind (what the share would be with equal weights).
    """
    adv = q - v
    w = np.minimum(np.exp(np.minimum(beta * adv, 50.0)), clip)
    chunks = w[: len(w) // batch * batch].reshape(-1, batch)
    ess = (chunks.sum(1) ** 2 / np.square(chunks).sum(1)) / batch
    total = w.sum()
    kinds = {
        "top10": meta["diag_return_percentile"] > 0.9,  # episodes in the top 10 % by return
        "top1": meta["diag_return_percentile"] > 0.99,
        "bottom50": meta["diag_return_percentile"] <= 0.5,
        "start40": meta["diag_step"] < 40,  # the first 40 steps, where Walker2d's episodes lean back furthest
        "prefall20": (meta["diag_to_fall"] >= 0) & (meta["diag_to_fall"] < 20),  # the last 20 steps before a fall
    }
    out = {"q_mean": float(q.mean()), "v_mean": float(v.mean()), "adv_mean": float(adv.mean()),
           "adv_std": float(adv.std()), "adv_p05": float(np.quantile(adv, 0.05)),
           "adv_p95": float(np.quantile(adv, 0.95)), "adv_max": float(adv.max()),
           "weight_mean": float(w.mean()), "clip_frac": float(np.mean(w >= clip)),
           "ess_frac": float(ess.mean()),
           "weighted_episode_return": float((w * meta["diag_return"]).sum() / total),
           "mean_episode_return": float(meta["diag_return"].mean())}
    for name, mask in kinds.items():
        out[f"{name}_mass"] = float(w[mask].sum() / total)
        out[f"{name}_rows"] = float(mask.mean())
    return out


def save_inputs(path: Path, inputs: Inputs, diag: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, observations=inputs.observations, actions=inputs.actions, rewards=inputs.rewards,
             terminals=inputs.terminals, timeouts=inputs.timeouts, obs_mean=inputs.obs_mean, obs_std=inputs.obs_std,
             reward_scale=inputs.reward_scale, transitions=inputs.transitions, reward_sum=inputs.reward_sum, **diag)


# -- the d3rlpy side (runs in the venv; imports no lom module) ---------------------------------------------------
def d3rlpy_config(agent: str, steps: int):
    import d3rlpy

    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=list(HIDDEN))
    s = REFERENCE_SETTINGS[agent]
    if agent == "IQL":
        return d3rlpy.algos.IQLConfig(
            **s, actor_encoder_factory=encoder, critic_encoder_factory=encoder, value_encoder_factory=encoder,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)),
            critic_optim_factory=d3rlpy.optimizers.AdamFactory())
    return d3rlpy.algos.TD3PlusBCConfig(
        **s, actor_encoder_factory=encoder, critic_encoder_factory=encoder,
        actor_optim_factory=d3rlpy.optimizers.AdamFactory(), critic_optim_factory=d3rlpy.optimizers.AdamFactory())


def train_d3rlpy(args: argparse.Namespace) -> None:
    import d3rlpy
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = np.load(args.inputs)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"], actions=data["actions"], rewards=data["rewards"],
        terminals=data["terminals"].astype(np.float32), timeouts=data["timeouts"].astype(np.float32),
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS, action_size=data["actions"].shape[1])
    count = dataset.transition_count
    reward_sum = sum(float(np.sum(e.rewards[: e.transition_count], dtype=np.float64)) for e in dataset.episodes)
    if count != int(data["transitions"]) or not math.isclose(reward_sum, float(data["reward_sum"]), rel_tol=1e-6,
                                                                  abs_tol=1e-3):
        raise SystemExit(f"d3rlpy's dataset differs from lom's: {count} transitions (lom {int(data['transitions'])}),"
                         f" reward sum {reward_sum} (lom {float(data['reward_sum'])})")
    d3rlpy.seed(args.seed)
    algo = d3rlpy_config(args.agent, args.steps).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    diag_obs = torch.as_tensor(data["diag_obs"])
    diag_act = torch.as_tensor(data["diag_act"])
    meta = {k: data[k] for k in data.files if k.startswith("diag_") and k not in ("diag_obs", "diag_act")}
    rows, start = [], time.perf_counter()
    fitter = algo.fitter(dataset, n_steps=args.steps, n_steps_per_epoch=DIAGNOSTIC_EVERY, show_progress=False,
                         logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=10**9,
                         experiment_name=f"{args.agent}_seed{args.seed}", with_timestamp=False)
    for epoch, metrics in fitter:
        step = epoch * DIAGNOSTIC_EVERY
        row = {"step": step, "wall_time_s": round(time.perf_counter() - start, 3),
               **{k: v for k, v in metrics.items() if not k.startswith("time_")}}
        if args.agent == "IQL":
            impl = algo.impl
            with torch.no_grad():
                q = impl._targ_q_func_forwarder.compute_expected_q(diag_obs, diag_act, "min").squeeze(-1).numpy()
                v = impl.modules.value_func(diag_obs).squeeze(-1).numpy()
            row.update(weight_stats(q, v, meta))
        rows.append(row)
        if step % args.save_every == 0 or step == args.steps:
            algo.save_policy(str(out / f"policy_{step}.pt"))
        print(f"d3rlpy {args.agent} seed {args.seed}: step {step}, {row['wall_time_s']:.0f} s", flush=True)
    write_csv(out / "d3rlpy_losses.csv", rows)
    (out / "d3rlpy_config.json").write_text(json.dumps({
        "algo": algo.config.get_type(), "config": json.loads(algo.config.serialize()),
        "d3rlpy": d3rlpy.__version__, "torch": torch.__version__, "transitions": count,
        "reward_sum": reward_sum, "train_wall_time_s": round(time.perf_counter() - start, 3)}, indent=2))


# -- the lom side -------------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import d3rlpy"], capture_output=True).returncode == 0:
        return python
    print(f"making {venv} for d3rlpy (requirements-bench.txt)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # first: an unpinned torch pulls the CUDA build
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    return python


def schedule_of(args: argparse.Namespace) -> dict:
    return {key: getattr(args, key) for key in SCHEDULE}


def one_thread_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def evaluate_policies(policy_dir: Path, spec, normalizer, seed: int, steps: list[int], episodes: int) -> list[dict]:
    """Score d3rlpy's saved greedy policies (states standardised by lom's normalizer) with lom's evaluation."""
    import torch

    from lom.training.evaluation import evaluate

    rows = []
    for step in steps:
        policy = torch.jit.load(str(policy_dir / f"policy_{step}.pt"), map_location="cpu")
        result = evaluate(lambda obs: policy(obs), normalizer, spec, episodes, seed=seed * EVAL_SEED_STRIDE + step,
                          device=torch.device("cpu"))
        rows.append({"step": step, **result.summary})
        print(f"  d3rlpy step {step}: normalised score {result.summary['normalized_score']:.1f}", flush=True)
    return rows


def study_run(study: Path, dataset: str, agent: str, seed: int, schedule: dict) -> Path | None:
    """The full-replay study's run folder for (dataset, agent, seed) if it finished with this benchmark's schedule."""
    run = study / dataset / agent / f"seed{seed}"
    if not (run / "metrics.csv").is_file() or not (run / "config.json").is_file():
        return None
    config = json.loads((run / "config.json").read_text())
    if any(config.get(k) != v for k, v in schedule.items()):
        return None
    steps = [int(r["step"]) for r in read_metrics(run / "metrics.csv")]
    return run if steps == eval_steps(schedule) else None


def eval_steps(schedule: dict) -> list[int]:
    every, total = schedule["eval_every"], schedule["training_steps"]
    return sorted({*range(every, total + 1, every), total})


def train_ours(args, spec, seed: int) -> Path:
    """Our agent via train.py with the study's flags (one thread), into --scratch; returns its run folder."""
    schedule = schedule_of(args)
    flags = ["--env_name", args.env_name, "--dataset_path", str(args.dataset_path), "--agent", args.agent,
             "--seed", str(seed), "--training_steps", str(schedule["training_steps"]),
             "--eval_every", str(schedule["eval_every"]), "--eval_episodes", str(schedule["eval_episodes"]),
             "--log_path", str(Path(args.scratch) / "lom_runs"), "--group", "reference", "--device", "cpu",
             "--resume"]
    train = [sys.executable, str(REPO / "train.py"), *flags]
    run_dir = Path(subprocess.run([*train, "--print_run_dir"], capture_output=True, text=True, check=True,
                                  env=one_thread_env(), cwd=REPO).stdout.strip().splitlines()[-1])
    if (run_dir / "results.json").is_file():
        return run_dir
    print(f"training ours: {' '.join(train)}", flush=True)
    with open(Path(args.scratch) / f"lom_{spec.name}_{args.agent}_seed{seed}.log", "w") as log:
        subprocess.run(train, check=True, env=one_thread_env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return run_dir


def copy_small_files(src: Path, dst: Path, note: dict) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.csv", "results.json"):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    (dst / "source.json").write_text(json.dumps(note, indent=2) + "\n")


def run_d3rlpy(args, spec, normalizer, inputs_path: Path, inputs: Inputs, seed: int, python: Path) -> None:
    dst = Path(args.out) / "d3rlpy" / spec.name / args.agent / f"seed{seed}"
    if (dst / "metrics.csv").is_file():
        print(f"d3rlpy {args.agent} seed {seed}: done already ({dst})", flush=True)
        return
    work = Path(args.scratch) / "d3rlpy" / spec.name / args.agent / f"seed{seed}"
    schedule = schedule_of(args)
    steps = eval_steps(schedule)
    if not all((work / f"policy_{s}.pt").is_file() for s in steps):
        cmd = [str(python), str(Path(__file__).resolve()), "_d3rlpy", "--inputs", str(inputs_path), "--agent",
               args.agent, "--seed", str(seed), "--steps", str(schedule["training_steps"]),
               "--save_every", str(schedule["eval_every"]), "--out", str(work)]
        print(f"training d3rlpy: {' '.join(cmd)}", flush=True)
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "train.log", "w") as log:
            subprocess.run(cmd, check=True, env=one_thread_env(), stdout=log, stderr=subprocess.STDOUT)
    metrics = evaluate_policies(work, spec, normalizer, seed, steps, schedule["eval_episodes"])
    losses = {int(r["step"]): r for r in read_metrics(work / "d3rlpy_losses.csv")}
    for row in metrics:
        row.update({k: v for k, v in losses.get(row["step"], {}).items() if k not in ("step",)})
    dst.mkdir(parents=True, exist_ok=True)
    write_csv(dst / "metrics.csv", metrics)
    d3 = json.loads((work / "d3rlpy_config.json").read_text())
    config = {"implementation": "d3rlpy", "agent": args.agent, "seed": seed, "dataset": spec.name,
              "env_id": spec.env_id, "dataset_path": str(args.dataset_path), "ref_min_score": spec.ref_min_score,
              "ref_max_score": spec.ref_max_score, **schedule, "eval_seed": f"seed * {EVAL_SEED_STRIDE} + step",
              "reward_scale": inputs.reward_scale, "transitions": inputs.transitions,
              "observation_standardisation": "lom ObservationNormalizer (dataset mean, std floored at 1e-3), "
                                             "applied before d3rlpy", "reference_settings": REFERENCE_SETTINGS[args.agent],
              "hidden": list(HIDDEN), "cpu_threads": 1, **{f"d3rlpy_{k}": v for k, v in d3.items()}}
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if args.agent == "IQL":
        diag = [{"step": int(r["step"]), **{k: r[k] for k in WEIGHT_COLUMNS if k in r}} for r in losses.values()]
        write_csv(dst / "diagnostics.csv", diag)


WEIGHT_COLUMNS = ("q_mean", "v_mean", "adv_mean", "adv_std", "adv_p05", "adv_p95", "adv_max", "weight_mean",
                  "clip_frac", "ess_frac", "weighted_episode_return", "mean_episode_return",
                  *(f"{k}_{s}" for k in ("top10", "top1", "bottom50", "start40", "prefall20") for s in ("mass", "rows")))


def run_lom(args, spec, inputs: Inputs, seed: int) -> None:
    dst = Path(args.out) / "lom" / spec.name / args.agent / f"seed{seed}"
    if (dst / "metrics.csv").is_file():
        return
    found = study_run(Path(args.study), spec.name, args.agent, seed, schedule_of(args))
    if found is not None:
        config = json.loads((found / "config.json").read_text())
        same = config.get("transitions") == inputs.transitions and math.isclose(
            config.get("reward_scale", 1.0), inputs.reward_scale, rel_tol=1e-9)
        copy_small_files(found, dst, {"from": str(found.relative_to(REPO)), "trained_by": "the full-replay study",
                                      "same_file_facts": same})
        print(f"ours {args.agent} seed {seed}: the study's run {found} (transitions and reward scale "
              f"{'match' if same else 'DIFFER from'} this file)", flush=True)
        return
    run_dir = train_ours(args, spec, seed)
    copy_small_files(run_dir, dst, {"trained_by": "benchmarks/reference_baselines.py (train.py)",
                                    "run_dir": str(run_dir)})


# -- the side-by-side table ---------------------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; nan for one value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    m, s = mean_std(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def collect_runs(out: Path) -> dict[tuple[str, str], dict[str, dict[int, list[dict]]]]:
    """{(dataset, agent): {implementation: {seed: metrics rows}}} from <out>/{lom,d3rlpy}/."""
    found: dict = {}
    for metrics in sorted(m for impl in IMPLEMENTATIONS for m in (out / impl).glob("*/*/seed*/metrics.csv")):
        impl, dataset, agent, seed = metrics.parts[-5:-1]
        found.setdefault((dataset, agent), {}).setdefault(impl, {})[int(seed[4:])] = read_metrics(metrics)
    return found


def side_by_side(runs: dict[str, dict[int, list[dict]]]) -> list[dict]:
    """Rows of the table for one (dataset, agent): each evaluation step, then 'final' and the mean of the last
    LAST_EVALS evaluations; per implementation the list of per-seed scores (normalised) in seed order."""
    table = []
    steps = sorted({int(r["step"]) for impl in runs.values() for rows in impl.values() for r in rows})
    for step in steps:
        row = {"step": str(step)}
        for impl in IMPLEMENTATIONS:
            row[impl] = [r["normalized_score"] for seed in sorted(runs.get(impl, {}))
                         for r in runs[impl][seed] if int(r["step"]) == step]
        table.append(row)
    for label, pick in (("final", lambda rows: rows[-1:]), (f"last {LAST_EVALS}", lambda rows: rows[-LAST_EVALS:])):
        row = {"step": label}
        for impl in IMPLEMENTATIONS:
            row[impl] = [float(np.mean([r["normalized_score"] for r in pick(runs[impl][seed])]))
                         for seed in sorted(runs.get(impl, {}))]
        table.append(row)
    return table


def markdown_table(dataset: str, agent: str, runs: dict[str, dict[int, list[dict]]]) -> str:
    seeds = {impl: sorted(runs.get(impl, {})) for impl in IMPLEMENTATIONS}
    head = (f"**{agent} on {dataset}** (normalised score, mean ± std with ddof = 1 over seeds; ours seeds "
            f"{', '.join(map(str, seeds['lom'])) or '–'}, d3rlpy seeds {', '.join(map(str, seeds['d3rlpy'])) or '–'})")
    lines = [head, "", "| step | ours (lom) | d3rlpy | ours per seed | d3rlpy per seed |", "|---|---:|---:|---|---|"]
    for row in side_by_side(runs):
        bold = "**" if not row["step"].isdigit() else ""
        per = [" / ".join(f"{v:.1f}" for v in row[impl]) for impl in IMPLEMENTATIONS]
        lines.append(f"| {bold}{row['step']}{bold} | {bold}{fmt(row['lom'])}{bold} | {bold}{fmt(row['d3rlpy'])}{bold}"
                     f" | {per[0]} | {per[1]} |")
    return "\n".join(lines)


def write_report(out: Path) -> str:
    runs = collect_runs(out)
    parts = [markdown_table(dataset, agent, r) for (dataset, agent), r in sorted(runs.items())]
    text = "\n\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "agent", "implementation", "seed", "step", "normalized_score"])
        for (dataset, agent), impls in sorted(runs.items()):
            for impl, seeds in sorted(impls.items()):
                for seed, rows in sorted(seeds.items()):
                    for r in rows:
                        writer.writerow([dataset, agent, impl, seed, int(r["step"]), round(r["normalized_score"], 4)])
    if runs:
        plot_curves(runs, out / "curves.png")
    return text


def plot_curves(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2), squeeze=False)
    colours = {"lom": "tab:blue", "d3rlpy": "tab:orange"}
    for ax, ((dataset, agent), impls) in zip(axes[0], sorted(runs.items())):
        for impl in IMPLEMENTATIONS:
            seeds = impls.get(impl, {})
            for rows in seeds.values():
                ax.plot([r["step"] for r in rows], [r["normalized_score"] for r in rows], color=colours[impl],
                        alpha=0.35, lw=1)
            if seeds:
                steps = sorted({r["step"] for rows in seeds.values() for r in rows})
                mean = [np.mean([r["normalized_score"] for rows in seeds.values() for r in rows if r["step"] == s])
                        for s in steps]
                ax.plot(steps, mean, color=colours[impl], lw=2.5,
                        label=f"{'ours' if impl == 'lom' else 'd3rlpy'} (n = {len(seeds)})")
        ax.set_title(f"{agent} on {dataset}")
        ax.set_xlabel("training step")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line -------------------------------------------------------------------------------------------------
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_name", help="the gymnasium env id of the file, e.g. Walker2d-v4")
    parser.add_argument("--dataset_path", help="a D4RL-format HDF5 file (e.g. written by python -m lom.collect)")
    parser.add_argument("--agent", choices=AGENTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="d3rlpy's seeds")
    parser.add_argument("--ours_seeds", type=int, nargs="+", help="ours' seeds (default: --seeds)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--scratch", default=str(Path.home() / "lom_data" / "reference_baselines"),
                        help="policies, inputs and our runs' checkpoints (not committed)")
    parser.add_argument("--study", default=str(DEFAULT_STUDY), help="where ours' finished runs are reused from")
    parser.add_argument("--venv", default=str(DEFAULT_VENV))
    for key, value in SCHEDULE.items():
        parser.add_argument(f"--{key}", type=int, default=value, help=f"the schedule (default: the study's, {value:,})")
    parser.add_argument("--table_only", action="store_true", help="only rebuild report.md, report.csv, curves.png")
    parser.add_argument("--skip_ours", action="store_true")
    parser.add_argument("--skip_d3rlpy", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_d3rlpy"]:
        inner = argparse.ArgumentParser()
        for name, kind in (("--inputs", str), ("--agent", str), ("--seed", int), ("--steps", int),
                           ("--save_every", int), ("--out", str)):
            inner.add_argument(name, type=kind, required=True)
        train_d3rlpy(inner.parse_args(argv[1:]))
        return 0
    args = parse(argv)
    if str(REPO) not in sys.path:  # run as a script from anywhere: lom is this repository's package
        sys.path.insert(0, str(REPO))
    out = Path(args.out)
    if not args.table_only:
        if not (args.env_name and args.dataset_path and args.agent):
            raise SystemExit("give --env_name, --dataset_path and --agent (or --table_only)")
        import torch

        from lom.data.batches import ObservationNormalizer

        torch.set_num_threads(1)
        Path(args.scratch).mkdir(parents=True, exist_ok=True)
        inputs, spec, transitions = prepare_inputs(args.env_name, args.dataset_path, args.agent)
        normalizer = ObservationNormalizer(torch.as_tensor(inputs.obs_mean), torch.as_tensor(inputs.obs_std))
        print(f"{spec.name}: {inputs.transitions} transitions, reward scale {inputs.reward_scale:.6g} for "
              f"{args.agent}", flush=True)
        if not args.skip_d3rlpy:
            python = ensure_venv(Path(args.venv))
            inputs_path = Path(args.scratch) / "inputs" / f"{spec.name}_{args.agent}.npz"
            save_inputs(inputs_path, inputs, diagnostic_rows(transitions, inputs.obs_mean, inputs.obs_std))
            for seed in args.seeds:
                run_d3rlpy(args, spec, normalizer, inputs_path, inputs, seed, python)
        if not args.skip_ours:
            for seed in args.ours_seeds or args.seeds:
                run_lom(args, spec, inputs, seed)
    print(write_report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
