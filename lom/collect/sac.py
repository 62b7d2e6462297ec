"""Soft Actor-Critic (Haarnoja et al., 2018) trained online in a gymnasium env, resumable from checkpoints.

Used by `lom.collect` to make D4RL-style datasets: the replay buffer, policy snapshots and the eval curve it keeps
are exactly what the dataset files need. Standard settings: twin Q, tanh-squashed Gaussian actor, automatic
entropy tuning (target −|A|), 256×256 MLPs, Adam 3e-4, batch 256, γ 0.99, Polyak 0.005, one update per step.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lom.envs.mujoco_notices import hide_known_mujoco_notices
from lom.errors import LOMError
from lom.io import atomic_path

SAC_CHECKPOINT = "sac_checkpoint.pt"
EVAL_CSV_NAME = "sac_eval.csv"
EVAL_PNG_NAME = "sac_eval.png"
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
LOG_EVERY = 1000  # steps between progress-bar refreshes, the only reads of the losses back to the host


@dataclass(frozen=True)
class SACConfig:
    """The learner's hyperparameters."""

    hidden: int = 256
    lr: float = 3e-4
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0


@dataclass(frozen=True)
class OnlineConfig:
    """What to train on and for how long; together with `sac` it fixes the run (a resume must match it)."""

    env_id: str
    steps: int
    seed: int = 0
    learning_starts: int = 10_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    max_episode_steps: int | None = None
    sac: SACConfig = field(default_factory=SACConfig)
    # Keyword arguments of the env's constructor (e.g. HalfCheetah-v4's forward_reward_weight=-1 to run backwards):
    # the objective SAC learns. Empty: the env as registered.
    env_kwargs: dict = field(default_factory=dict)


def online_config_dict(config: OnlineConfig) -> dict:
    """The config as a plain dict, as saved in checkpoints and collect_config.json. Without env kwargs the key is
    left out, so that runs made before env kwargs existed keep reading back as equal."""
    saved = dataclasses.asdict(config)
    if not saved["env_kwargs"]:
        del saved["env_kwargs"]
    return saved


# ---------------------------------------------------------------------------------------------------- environments


def make_online_env(env_id: str, max_episode_steps: int | None = None, env_kwargs: dict | None = None
                    ) -> gymnasium.Env:
    """gymnasium.make with its own TimeLimit, actions rescaled so that the policy acts in [-1, 1]; `env_kwargs` go
    to the env's constructor."""
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    hide_known_mujoco_notices()
    try:
        with warnings.catch_warnings():
            # D4RL's datasets use the v4 MuJoCo models, so gymnasium's "upgrade to v5" notice is expected noise.
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            env = gymnasium.make(env_id, **kwargs, **(env_kwargs or {}))
    except gymnasium.error.Error as e:
        raise LOMError(f"cannot make gymnasium env '{env_id}' ({e}) — pass an id such as HalfCheetah-v4") from None
    except (TypeError, ValueError) as e:
        if not env_kwargs:
            raise
        raise LOMError(f"env '{env_id}' refuses --env_kwargs {format_env_kwargs(env_kwargs)} ({e}) — pass keyword "
                       "arguments its constructor takes") from None
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, gymnasium.spaces.Box) or not np.all(np.isfinite(act.low) & np.isfinite(act.high)):
        raise LOMError(f"env '{env_id}' has action space {act} — SAC needs a bounded continuous (Box) action space")
    if not isinstance(obs, gymnasium.spaces.Box) or len(obs.shape) != 1:
        raise LOMError(f"env '{env_id}' has observation space {obs} — SAC here needs a flat Box observation space")
    if env.spec is None or env.spec.max_episode_steps is None:
        raise LOMError(f"env '{env_id}' has no time limit — pass --max_episode_steps")
    ones = np.ones(act.shape, dtype=np.float32)
    return gymnasium.wrappers.RescaleAction(env, -ones, ones)


def format_env_kwargs(env_kwargs: dict) -> str:
    """KEY=VALUE ..., as --env_kwargs takes them."""
    return " ".join(f"{key}={value}" for key, value in sorted(env_kwargs.items()))


def env_dims(env: gymnasium.Env) -> tuple[int, int]:
    return env.observation_space.shape[0], env.action_space.shape[0]


# ---------------------------------------------------------------------------------------------------- networks


def sac_mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
    )


class TanhGaussianActor(nn.Module):
    """π(a|s) = tanh(N(μ(s), σ(s))), actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.net = sac_mlp(obs_dim, 2 * act_dim, hidden)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability (with the tanh change-of-variables term)."""
        mean, log_std = self(obs)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * eps
        gaussian_logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2), written in a numerically stable form.
        squash = (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), gaussian_logp - squash

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self(obs)[0])
        return self.sample(obs, generator)[0]


class StackedLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: input (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation range
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinQ(nn.Module):
    """Two Q-networks evaluated together: Q(s, a) -> (2, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, ensemble: int = 2):
        super().__init__()
        self.ensemble = ensemble
        self.net = nn.Sequential(
            StackedLinear(ensemble, obs_dim + act_dim, hidden),
            nn.ReLU(),
            StackedLinear(ensemble, hidden, hidden),
            nn.ReLU(),
            StackedLinear(ensemble, hidden, 1),
        )

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1).expand(self.ensemble, -1, -1)
        return self.net(x).squeeze(-1)


# ---------------------------------------------------------------------------------------------------- replay buffer


@dataclass
class ReplayBatch:
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminals: torch.Tensor


class ReplayBuffer:
    """Preallocated tensors on the training device, filled in order and never overwritten (it is the dataset)."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device):
        self.capacity, self.size, self.device = capacity, 0, device
        f32 = dict(dtype=torch.float32, device=device)
        self.obs = torch.empty(capacity, obs_dim, **f32)
        self.actions = torch.empty(capacity, act_dim, **f32)
        self.rewards = torch.empty(capacity, **f32)
        self.next_obs = torch.empty(capacity, obs_dim, **f32)
        self.terminals = torch.empty(capacity, **f32)
        self.timeouts = torch.empty(capacity, dtype=torch.bool, device=device)

    def add(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        i = self.size
        self.obs[i] = torch.as_tensor(obs)
        self.actions[i] = torch.as_tensor(action)
        self.rewards[i] = reward
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.terminals[i] = float(terminated)
        self.timeouts[i] = truncated
        self.size += 1

    def sample(self, batch_size: int) -> ReplayBatch:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        return ReplayBatch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminals[idx])

    def numpy_rows(self, end: int) -> dict[str, np.ndarray]:
        """Rows [0, end) as host arrays of their own (on the CPU `.numpy()` alone would alias the buffer)."""
        return {name: getattr(self, name)[:end].cpu().numpy().copy() for name in self.FIELDS}

    def state_dict(self) -> dict[str, torch.Tensor]:
        # clone: saving a view would save the whole preallocated storage
        return {name: getattr(self, name)[: self.size].cpu().clone() for name in self.FIELDS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.size = len(state["rewards"])
        for name in self.FIELDS:
            getattr(self, name)[: self.size] = state[name].to(self.device)


# ---------------------------------------------------------------------------------------------------- the learner


class SAC:
    """Actor, twin critic with its Polyak target, and the learned entropy temperature α."""

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, device: torch.device):
        self.config = config
        self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(device)
        self.critic = TwinQ(obs_dim, act_dim, config.hidden).to(device)
        self.critic_target = TwinQ(obs_dim, act_dim, config.hidden).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.lr)

    def update(self, batch: ReplayBatch) -> dict[str, torch.Tensor]:
        """One gradient step on critic, actor and α, then the target update. Returns detached losses (no sync)."""
        alpha = self.log_alpha.exp().detach()
        critic_loss = self._update_critic(batch, alpha)
        actor_loss, log_prob = self._update_actor(batch.obs, alpha)
        alpha_loss = self._update_alpha(log_prob)
        self._update_target()
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss, "alpha": alpha}

    def _update_critic(self, batch: ReplayBatch, alpha: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            next_action, next_logp = self.actor.sample(batch.next_obs)
            next_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values - alpha * next_logp
            target = batch.rewards + self.config.gamma * (1.0 - batch.terminals) * next_q
        loss = (self.critic(batch.obs, batch.actions) - target).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        return loss.detach()

    def _update_actor(self, obs: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, log_prob = self.actor.sample(obs)
        self.critic.requires_grad_(False)  # the actor's loss must not spend time on critic weight gradients
        q = self.critic(obs, action).min(dim=0).values
        self.critic.requires_grad_(True)
        loss = (alpha * log_prob - q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        return loss.detach(), log_prob.detach()

    def _update_alpha(self, log_prob: torch.Tensor) -> torch.Tensor:
        loss = -(self.log_alpha * (log_prob + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.alpha_opt.step()
        return loss.detach()

    @torch.no_grad()
    def _update_target(self) -> None:
        for target, source in zip(self.critic_target.parameters(), self.critic.parameters()):
            target.lerp_(source, self.config.tau)

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().cpu(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])


# ---------------------------------------------------------------------------------------------------- rollouts

ArrayPolicy = Callable[[np.ndarray], np.ndarray]


def actor_policy(actor: TanhGaussianActor, deterministic: bool,
                 generator: torch.Generator | None = None) -> ArrayPolicy:
    """Wrap an actor as obs -> action in [-1, 1] (host arrays)."""
    device = next(actor.parameters()).device

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
        return actor.act(obs_t, deterministic, generator).cpu().numpy()

    return policy


def random_policy(act_dim: int, rng: np.random.Generator) -> ArrayPolicy:
    return lambda obs: rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)


def mark_cut_episode(arrays: dict[str, np.ndarray]) -> None:
    """The data ends at its last row: unless the episode terminated there, it was cut, which D4RL flags a timeout."""
    arrays["timeouts"][-1] |= not arrays["terminals"][-1]


@dataclass
class Rollout:
    """Rows in D4RL layout plus the returns of the episodes that ran to their end within the rollout."""

    arrays: dict[str, np.ndarray]
    episode_returns: np.ndarray


def rollout(
    env: gymnasium.Env,
    policy: ArrayPolicy,
    seed: int,
    *,
    steps: int | None = None,
    episodes: int | None = None,
    progress_desc: str | None = None,
) -> Rollout:
    """Run `policy` for `steps` rows or `episodes` episodes. A row cut by the end of the rollout gets timeouts=True.

    With `progress_desc`, a progress bar counts the rows.
    """
    if (steps is None) == (episodes is None):
        raise ValueError("rollout: give exactly one of steps, episodes")
    obs_dim, act_dim = env_dims(env)
    capacity = steps if steps is not None else episodes * env.spec.max_episode_steps
    arrays = {
        "observations": np.empty((capacity, obs_dim), np.float32),
        "actions": np.empty((capacity, act_dim), np.float32),
        "rewards": np.empty(capacity, np.float32),
        "next_observations": np.empty((capacity, obs_dim), np.float32),
        "terminals": np.zeros(capacity, bool),
        "timeouts": np.zeros(capacity, bool),
    }
    returns: list[float] = []
    obs, _ = env.reset(seed=seed)
    n, episode_return = 0, 0.0
    bar = tqdm(total=capacity, desc=progress_desc, unit="row", disable=progress_desc is None)
    while n < capacity and (episodes is None or len(returns) < episodes):
        action = np.clip(policy(obs.astype(np.float32)), -1.0, 1.0)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        row = {"observations": obs, "actions": action, "rewards": reward, "next_observations": next_obs}
        for key, value in row.items():
            arrays[key][n] = value
        arrays["terminals"][n], arrays["timeouts"][n] = terminated, truncated
        n, episode_return, obs = n + 1, episode_return + float(reward), next_obs
        bar.update(1)
        if terminated or truncated:
            returns.append(episode_return)
            episode_return, obs = 0.0, env.reset()[0]
    bar.close()
    arrays = {key: value[:n] for key, value in arrays.items()}
    mark_cut_episode(arrays)
    return Rollout(arrays, np.asarray(returns, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------- online training


@dataclass
class EvalRow:
    step: int
    return_mean: float
    return_std: float
    wall_time_s: float


@dataclass
class TrainingLog:
    """Everything besides weights and buffer that the datasets need: eval curve, snapshots, episode returns."""

    evals: list[EvalRow] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)  # actor state_dicts, one per eval row
    episode_returns: list[float] = field(default_factory=list)
    episode_end_steps: list[int] = field(default_factory=list)


@dataclass
class TrainedSAC:
    agent: SAC
    buffer: ReplayBuffer
    log: TrainingLog
    resumed_from_step: int  # the checkpoint's step: 0 for a fresh run, `steps` when it had finished


def load_checkpoint(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SAC_CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LOMError(f"cannot read checkpoint {path} ({e}) — delete it to restart the run from scratch") from None


class OnlineTrainer:
    """The SAC training loop: act, store, update, evaluate, checkpoint at episode ends.

    Checkpoints are taken at the first episode end after every `checkpoint_every` steps, so the environment
    state needs no saving: a resumed run continues exactly as the uninterrupted one would have.
    """

    def __init__(self, config: OnlineConfig, run_dir: str | Path, device: str = "cpu", checkpoint_every: int = 50_000):
        self.config, self.run_dir, self.checkpoint_every = config, Path(run_dir), checkpoint_every
        self.device = torch.device(device)
        self.env = make_online_env(config.env_id, config.max_episode_steps, config.env_kwargs)
        self.eval_env = make_online_env(config.env_id, config.max_episode_steps, config.env_kwargs)
        torch.manual_seed(config.seed)
        self.agent = SAC(*env_dims(self.env), config.sac, self.device)
        self.buffer = ReplayBuffer(config.steps, *env_dims(self.env), self.device)
        self.log = TrainingLog()
        self.action_rng = np.random.default_rng(config.seed)
        self.step, self.wall_time_s, self.last_checkpoint_step = 0, 0.0, 0
        self.obs: np.ndarray | None = None
        self.episode_return = 0.0

    def run(self, progress: bool = True) -> TrainedSAC:
        resumed_from = self._resume()
        if self.step == 0:
            self.obs = self.env.reset(seed=self.config.seed)[0]
        started, wall_before = time.perf_counter(), self.wall_time_s
        bar = tqdm(total=self.config.steps, initial=self.step, desc="SAC", unit="step", disable=not progress)
        while self.step < self.config.steps:
            losses = self._train_step()
            self.wall_time_s = wall_before + time.perf_counter() - started
            bar.update(1)
            if self.step % self.config.eval_every == 0 or self.step == self.config.steps:
                self._evaluate()
            if self.obs is None:
                self._end_episode()
            if losses is not None and self.step % LOG_EVERY == 0:
                bar.set_postfix(self._postfix(losses), refresh=False)
        bar.close()
        if resumed_from < self.config.steps:
            self._save_checkpoint()
        return TrainedSAC(self.agent, self.buffer, self.log, resumed_from)

    def _train_step(self) -> dict[str, torch.Tensor] | None:
        if self.obs is None:
            self.obs = self.env.reset()[0]
        action = self._choose_action(self.obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(self.obs, action, float(reward), next_obs, terminated, truncated)
        self.episode_return += float(reward)
        self.obs = None if terminated or truncated else next_obs
        self.step += 1
        if self.step <= self.config.learning_starts:
            return None
        return self.agent.update(self.buffer.sample(self.config.sac.batch_size))

    def _choose_action(self, obs: np.ndarray) -> np.ndarray:
        if self.step < self.config.learning_starts:
            return self.action_rng.uniform(-1.0, 1.0, self.buffer.actions.shape[1]).astype(np.float32)
        with torch.no_grad():
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            return self.agent.actor.act(obs_t, deterministic=False).clamp(-1.0, 1.0).cpu().numpy()

    def _end_episode(self) -> None:
        self.log.episode_returns.append(self.episode_return)
        self.log.episode_end_steps.append(self.step)
        self.episode_return = 0.0
        if self.step - self.last_checkpoint_step >= self.checkpoint_every and self.step < self.config.steps:
            self._save_checkpoint()

    def _evaluate(self) -> None:
        seed = self.config.seed + 1_000_000 + self.step  # fixed per step, so resumed runs evaluate identically
        policy = actor_policy(self.agent.actor, deterministic=True)
        returns = rollout(self.eval_env, policy, seed, episodes=self.config.eval_episodes).episode_returns
        self.log.evals.append(EvalRow(self.step, float(returns.mean()), float(returns.std()), self.wall_time_s))
        self.log.snapshots.append({k: v.detach().cpu().clone() for k, v in self.agent.actor.state_dict().items()})
        write_eval_curve(self.run_dir, self.config.env_id, self.log.evals)

    def _postfix(self, losses: dict[str, torch.Tensor]) -> dict[str, str]:
        postfix = {k: f"{v.item():.3g}" for k, v in losses.items()}
        if self.log.episode_returns:
            postfix["episode_return"] = f"{self.log.episode_returns[-1]:.0f}"
        if self.log.evals:
            postfix["eval"] = f"{self.log.evals[-1].return_mean:.0f}"
        return postfix

    # -------------------------------------------------------------------------------------------- checkpoints

    def _save_checkpoint(self) -> None:
        state = {
            "config": online_config_dict(self.config),
            "step": self.step,
            "wall_time_s": self.wall_time_s,
            "agent": self.agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "log": dataclasses.asdict(self.log),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "action_rng": self.action_rng.bit_generator.state,
            "env_rng": self.env.unwrapped.np_random.bit_generator.state,
        }
        with atomic_path(self.run_dir / SAC_CHECKPOINT) as tmp:
            torch.save(state, tmp)
        self.last_checkpoint_step = self.step

    def _resume(self) -> int:
        state = load_checkpoint(self.run_dir)
        if state is None:
            return 0
        if state["config"] != online_config_dict(self.config):
            raise LOMError(
                f"{self.run_dir / SAC_CHECKPOINT} belongs to a run with other settings — use another output folder "
                "or rerun with the original flags"
            )
        self.step = self.last_checkpoint_step = state["step"]
        self.wall_time_s = state["wall_time_s"]
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        log = state["log"]
        self.log = TrainingLog(
            [EvalRow(**row) for row in log["evals"]], log["snapshots"], log["episode_returns"], log["episode_end_steps"]
        )
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.action_rng.bit_generator.state = state["action_rng"]
        self.env.unwrapped.np_random.bit_generator.state = state["env_rng"]
        return self.step


def write_eval_curve(run_dir: Path, env_id: str, evals: list[EvalRow]) -> None:
    """sac_eval.csv and sac_eval.png in the run folder, rewritten after every evaluation."""
    with atomic_path(run_dir / EVAL_CSV_NAME) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([fld.name for fld in dataclasses.fields(EvalRow)])
            writer.writerows(dataclasses.astuple(row) for row in evals)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([row.step for row in evals])
    mean = np.array([row.return_mean for row in evals])
    std = np.array([row.return_std for row in evals])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean, marker="o", markersize=3)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set(xlabel="environment steps", ylabel="evaluation return (deterministic policy)", title=f"SAC on {env_id}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(run_dir / EVAL_PNG_NAME) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
