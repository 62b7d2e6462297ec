"""Why IQL falls on collected Walker2d replay: our IQL's run again, measured as it trains, and its policies rolled out.

    # 1. our IQL, the study's flags and seed (its evaluations must equal the study's run), measured every 1,000
    #    steps on benchmarks/reference_baselines.py's fixed diagnostic rows, checkpoints kept every 5,000, stopped
    #    after the --stop_at evaluation:
    python results/reference_baselines/probe_iql_collapse.py train --dataset_path FILE --seed 0 --stop_at 25000 \
        --scratch ~/lom_data/reference_baselines/probe --out results/reference_baselines/probes/lom_iql_walker2d_seed0
    # 2. how the policies fall: ours' checkpoints and d3rlpy's saved policies, the evaluation's episodes
    python results/reference_baselines/probe_iql_collapse.py rollout --dataset_path FILE \
        --lom ~/lom_data/reference_baselines/probe/checkpoint_{10000,15000,20000,25000}.pt \
        --d3rlpy ~/lom_data/reference_baselines/d3rlpy/walker2d-v4_full-replay/IQL/seed0/\
policy_{10000,15000,20000,25000}.pt \
        --out results/reference_baselines/probes/walker2d_iql_rollouts.csv
    # 3. from the 15k checkpoint to 20k again, unchanged (must repeat the run) or with one thing changed; the
    #    repeat holds to the digit with the code of commits up to 7555410 (later, IQL's fused actor Adam and its
    #    device-side cosine decay round differently in the last bits)
    python results/reference_baselines/probe_iql_collapse.py intervene --dataset_path FILE \
        --from_checkpoint ~/lom_data/reference_baselines/probe/checkpoint_15000.pt --variant frozen_critic \
        --stop_at 20000 --out results/reference_baselines/probes/intervene_15k_frozen_critic
    #    (add --critic_from ~/lom_data/reference_baselines/probe/checkpoint_20000.pt: the 20k critic, frozen, under
    #    the 15k actor)
    # 4. where the weights go at each checkpoint, on every dataset row (by episode-return decile and episode step)
    python results/reference_baselines/probe_iql_collapse.py weights --dataset_path FILE \
        --lom ~/lom_data/reference_baselines/probe/checkpoint_{5000,10000,15000,20000,25000}.pt \
        --out results/reference_baselines/probes/walker2d_iql_weights_by_group.csv

The diagnostics (`weight_stats` in benchmarks/reference_baselines.py): Q and V on dataset rows, the advantage
A = Q − V, IQL's weight w = min(exp(3·A), 100), the effective sample size of w per batch of 256, and the share of
Σw on rows of the best episodes, of the first 40 steps of an episode, and of the last 20 steps before a fall.

The checkpoints it reads, and the agent internals it calls, are those of commits up to 0b3ab6d (before every
network had a seed axis, lom/seeds.py): run it from a worktree of that commit
(`git worktree add ../lom-0b3ab6d 0b3ab6d`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lom import checkpoint  # noqa: E402
from lom.agents import make_agent  # noqa: E402
from lom.batches import ObservationNormalizer  # noqa: E402
from lom.config import TrainConfig  # noqa: E402
from lom.errors import TrainingStopped  # noqa: E402
from lom.trainer import EVAL_SEED_STRIDE, Trainer  # noqa: E402

_spec = importlib.util.spec_from_file_location("reference_baselines", REPO / "benchmarks" / "reference_baselines.py")
rb = importlib.util.module_from_spec(_spec)
sys.modules["reference_baselines"] = rb
_spec.loader.exec_module(rb)

FIRST_STEPS = 40
WALKER2D_ACTION_DIM = 6  # resolve fills LOM's values too, which IQL ignores
# Walker2d-v4 is healthy while 0.8 < torso height < 2 and −1 < torso angle < 1 (observation entries 0 and 1).
HEIGHT_RANGE, ANGLE_RANGE = (0.8, 2.0), (-1.0, 1.0)


def study_config(args) -> TrainConfig:
    """The full-replay study's IQL flags (results/full_replay/run_study.sh)."""
    return TrainConfig(env_name=args.env_name, dataset_path=args.dataset_path, agent="IQL", seed=args.seed,
                       training_steps=args.training_steps, eval_every=args.eval_every, eval_episodes=10,
                       checkpoint_every=args.eval_every,
                       log_path=str(Path(args.scratch) / "runs"), group="probe", device="cpu")


class ProbedTrainer(Trainer):
    """The study's IQL run, unchanged, with measurements that draw no random numbers, kept checkpoints and a stop."""

    def __init__(self, cfg, diag, out: Path, scratch: Path, stop_at: int, variant: str = "control"):
        super().__init__(cfg)
        self.diag, self.out, self.scratch, self.stop_at, self.variant = diag, out, scratch, stop_at, variant
        self.rows: list[dict] = []

    def prepare(self, transitions, mixture) -> None:
        super().prepare(transitions, mixture)
        if getattr(self, "critic_from", None) is not None:
            critic = {k[len("critic."):]: v for k, v in self.critic_from.items() if k.startswith("critic.")}
            self.agent.critic.load_state_dict(critic)
        apply_variant(self.agent, self.variant)
        step_fn = self.agent.train_step

        def measured_step(data):
            losses = step_fn(data)
            if (self.progress.step + 1) % rb.DIAGNOSTIC_EVERY == 0:
                self.measure(self.progress.step + 1)
            return losses

        self.agent.train_step = measured_step

    @torch.no_grad()
    def measure(self, step: int) -> None:
        agent = self.agent
        obs, act = torch.as_tensor(self.diag["diag_obs"]), torch.as_tensor(self.diag["diag_act"])
        q = agent.critic.value(obs, act).numpy()
        v = agent.critic.state_value(obs).numpy()
        pi = agent.actor(obs)
        start = torch.as_tensor(self.diag["diag_step"] < FIRST_STEPS)
        row = {"step": step, **rb.weight_stats(q, v, self.diag),
               "actor_log_std": float(agent.actor.log_std.mean()),
               "policy_data_mse": float((pi - act).square().mean()),
               "policy_data_mse_start40": float((pi - act)[start].square().mean())}
        self.rows.append(row)
        rb.write_csv(self.out / "diagnostics.csv", self.rows)

    def save_checkpoint(self, path=None) -> None:
        super().save_checkpoint(path)
        if path is None and self.progress.phase == "train" and self.progress.step % self.cfg.checkpoint_every == 0:
            shutil.copy(self.run_dir / checkpoint.CHECKPOINT_NAME, self.scratch / f"checkpoint_{self.progress.step}.pt")

    def _evaluate(self) -> dict:
        row = super()._evaluate()
        rb.write_csv(self.out / "metrics.csv", [{k: v for k, v in r.items()} for r in self.progress.metrics])
        if self.progress.step >= self.stop_at:
            self.stops.signum = signal.SIGTERM  # the loop saves the checkpoint at the next step boundary and stops
        return row


VARIANTS = ("control", "frozen_critic", "beta1", "beta0", "clip10")


def apply_variant(agent, variant: str) -> None:
    """control: IQL unchanged; frozen_critic: Q and V stay as loaded, the actor goes on learning from them;
    betaX: the actor's inverse temperature set to X (beta0: unit weights, i.e. BC); clip10: weights clipped at 10."""
    if variant == "frozen_critic":
        zero = torch.zeros(())
        agent.critic.update = lambda batch: {"critic/v_loss": zero, "critic/q_loss": zero}
    elif variant.startswith("beta"):
        agent.hp = dataclasses.replace(agent.hp, beta=float(variant[4:]))
    elif variant == "clip10":
        agent.hp = dataclasses.replace(agent.hp, weight_clip=10.0)
    elif variant != "control":
        raise SystemExit(f"unknown variant {variant}: choose one of {', '.join(VARIANTS)}")


def intervene(args) -> None:
    """Resume our run from a kept checkpoint (its random state too, so `control` repeats the run's own numbers)
    with one change (`--variant`), train to --stop_at and evaluate there with the run's evaluation seeds."""
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, _, transitions = rb.prepare_inputs(args.env_name, args.dataset_path, "IQL")
    normalizer = ObservationNormalizer.fit(transitions.observations, True)
    diag = rb.diagnostic_rows(transitions, normalizer.mean.numpy(), normalizer.std.numpy())
    critic = f"_critic_{Path(args.critic_from).stem}" if args.critic_from else ""
    scratch = Path(args.scratch) / "intervene" / f"{Path(args.from_checkpoint).stem}_{args.variant}{critic}"
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(study_config(args), resume=True)
    trainer = ProbedTrainer(cfg, diag, out, scratch, args.stop_at, args.variant)
    if args.critic_from:  # another checkpoint's critic (Q, its target and V), frozen, under this one's actor
        trainer.critic_from = checkpoint.load(args.critic_from)["agent"]["networks"]
    trainer.run_dir = scratch / "run"  # the run's own config (log_path included) is what --resume checks
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.from_checkpoint, trainer.run_dir / checkpoint.CHECKPOINT_NAME)
    try:
        trainer.run()
    except TrainingStopped as stop:
        print(stop)


def train(args) -> None:
    torch.set_num_threads(1)
    out, scratch = Path(args.out), Path(args.scratch)
    out.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    _, spec, transitions = rb.prepare_inputs(args.env_name, args.dataset_path, "IQL")
    normalizer = ObservationNormalizer.fit(transitions.observations, True)
    diag = rb.diagnostic_rows(transitions, normalizer.mean.numpy(), normalizer.std.numpy())
    trainer = ProbedTrainer(study_config(args), diag, out, scratch, args.stop_at)
    try:
        trainer.run()
    except TrainingStopped as stop:
        print(stop)


# -- rollouts -----------------------------------------------------------------------------------------------------
def load_lom_policy(path: Path, args):
    cfg = study_config(args).resolve("file", WALKER2D_ACTION_DIM)
    state = checkpoint.load(path)
    obs_dim = state["normalizer"]["mean"].shape[0]
    act_dim = state["agent"]["networks"]["actor.log_std"].shape[0]
    agent = make_agent(cfg, obs_dim, act_dim)
    agent.load_training_state(state["agent"])
    agent.eval()
    return agent.act, state["progress"]["step"]


def fall_kind(obs: np.ndarray, terminated: bool) -> str:
    if not terminated:
        return "none"
    height, angle = float(obs[0]), float(obs[1])
    if angle <= ANGLE_RANGE[0]:
        return "back"
    if angle >= ANGLE_RANGE[1]:
        return "forward"
    if height <= HEIGHT_RANGE[0]:
        return "low"
    return "other"


def rollout(args) -> None:
    import gymnasium as gym

    from lom.data import resolve_dataset

    torch.set_num_threads(1)
    spec = resolve_dataset(args.env_name, args.dataset_path)
    inputs, _, _ = rb.prepare_inputs(args.env_name, args.dataset_path, "IQL")
    normalizer = ObservationNormalizer(torch.as_tensor(inputs.obs_mean), torch.as_tensor(inputs.obs_std))
    policies = [("lom", p, *load_lom_policy(Path(p), args)) for p in args.lom or []]
    for p in args.d3rlpy or []:
        module = torch.jit.load(p, map_location="cpu")
        policies.append(("d3rlpy", p, lambda obs, m=module: m(obs), int(Path(p).stem.split("_")[-1])))
    rows = []
    for impl, path, act, step in policies:
        env = gym.make(spec.env_id)
        seed = args.seed * EVAL_SEED_STRIDE + step  # the evaluation's episodes at this step
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=seed + episode)
            angles, heights, actions, total = [], [], [], 0.0
            terminated = truncated = False
            while not (terminated or truncated):
                with torch.no_grad():
                    action = act(normalizer(torch.as_tensor(obs, dtype=torch.float32)[None]))[0].numpy()
                obs, reward, terminated, truncated, _ = env.step(action)
                angles.append(float(obs[1]))
                heights.append(float(obs[0]))
                actions.append(action)
                total += float(reward)
            a = np.asarray(actions)
            rows.append({"implementation": impl, "step": step, "episode": episode, "length": len(angles),
                         "return": round(total, 1), "score": round(float(spec.normalized_score(total)), 2),
                         "fall": fall_kind(obs, terminated),
                         "min_angle_first_40": round(min(angles[:FIRST_STEPS]), 3),
                         "final_angle": round(angles[-1], 3), "final_height": round(heights[-1], 3),
                         "mean_abs_action": round(float(np.abs(a).mean()), 3),
                         "saturated_action_frac": round(float((np.abs(a) > 0.99).mean()), 3),
                         "mean_action_first_40": " ".join(f"{x:.2f}" for x in a[:FIRST_STEPS].mean(0))})
        env.close()
        last = [r for r in rows if r["step"] == step and r["implementation"] == impl]
        print(f"{impl} step {step}: score {np.mean([r['score'] for r in last]):.1f}, lengths "
              f"{' '.join(str(r['length']) for r in last)}, falls {' '.join(r['fall'] for r in last)}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rb.write_csv(Path(args.out), rows)


# -- the weights on every row ---------------------------------------------------------------------------------------
@torch.no_grad()
def weights(args) -> None:
    torch.set_num_threads(1)
    _, _, transitions = rb.prepare_inputs(args.env_name, args.dataset_path, "IQL")
    normalizer = ObservationNormalizer.fit(transitions.observations, True)
    obs = normalizer(torch.as_tensor(transitions.observations))
    act = torch.as_tensor(transitions.actions)
    meta = rb.episode_metadata(transitions)
    ep_sorted = np.sort(meta["episode_returns"])
    decile = np.minimum((np.searchsorted(ep_sorted, meta["episode_return"], side="right") - 1) * 10
                        // len(ep_sorted), 9)
    rows = []
    for path in args.lom:
        cfg = study_config(args).resolve("file", WALKER2D_ACTION_DIM)
        state = checkpoint.load(path)
        agent = make_agent(cfg, obs.shape[1], act.shape[1])
        agent.load_training_state(state["agent"])
        q = torch.cat([agent.critic.value(o, a) for o, a in zip(obs.split(8192), act.split(8192))]).numpy()
        v = torch.cat([agent.critic.state_value(o) for o in obs.split(8192)]).numpy()
        adv = q - v
        w = np.minimum(np.exp(np.minimum(3.0 * adv, 50.0)), 100.0)
        step = state["progress"]["step"]
        groups = {f"return decile {d}": decile == d for d in range(10)}
        groups.update({"episode steps 0-39": meta["step_in_episode"] < 40,
                       "episode steps 40-199": (meta["step_in_episode"] >= 40) & (meta["step_in_episode"] < 200),
                       "episode steps 200+": meta["step_in_episode"] >= 200,
                       "last 20 steps before a fall": (meta["steps_to_fall"] >= 0) & (meta["steps_to_fall"] < 20)})
        start = meta["step_in_episode"] < FIRST_STEPS
        groups.update({"steps 0-39, return deciles 0-4": start & (decile <= 4),
                       "steps 0-39, return deciles 5-8": start & (decile >= 5) & (decile <= 8),
                       "steps 0-39, return decile 9": start & (decile == 9)})
        actions = transitions.actions.astype(np.float64)
        for name, mask in groups.items():
            rows.append({"step": step, "rows": name, "row_share": round(float(mask.mean()), 4),
                         "weight_share": round(float(w[mask].sum() / w.sum()), 4),
                         "mean_adv": round(float(adv[mask].mean()), 3),
                         "adv_std": round(float(adv[mask].std()), 3),
                         "mean_weight": round(float(w[mask].mean()), 3), "mean_q": round(float(q[mask].mean()), 2),
                         "mean_v": round(float(v[mask].mean()), 2),
                         "clip_frac": round(float((w[mask] >= 100).mean()), 4),
                         "mean_action": " ".join(f"{x:.2f}" for x in actions[mask].mean(0)),
                         "weighted_action": " ".join(f"{x:.2f}" for x in np.average(actions[mask], 0, w[mask]))})
        print(f"step {step}: Q {q.mean():.1f}, V {v.mean():.1f}, A std {adv.std():.2f}, at clip {(w >= 100).mean():.3f}",
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rb.write_csv(Path(args.out), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "rollout", "weights", "intervene"))
    parser.add_argument("--dataset_path", required=True)
    parser.add_argument("--env_name", default="Walker2d-v4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--training_steps", type=int, default=50_000, help="the study's (the cosine decay's length)")
    parser.add_argument("--eval_every", type=int, default=5_000, help="the study's; checkpoints are kept as often")
    parser.add_argument("--stop_at", type=int, default=25_000)
    parser.add_argument("--scratch", default=str(Path.home() / "lom_data" / "reference_baselines" / "probe"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--lom", nargs="*", help="our checkpoints (train's checkpoint_<step>.pt)")
    parser.add_argument("--d3rlpy", nargs="*", help="d3rlpy's saved policies (policy_<step>.pt)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--from_checkpoint", help="intervene: a checkpoint_<step>.pt that train kept")
    parser.add_argument("--variant", default="control", choices=VARIANTS)
    parser.add_argument("--critic_from", help="intervene: put this checkpoint's critic under the actor (use with "
                                              "--variant frozen_critic)")
    args = parser.parse_args()
    {"train": train, "rollout": rollout, "weights": weights, "intervene": intervene}[args.command](args)


if __name__ == "__main__":
    main()
