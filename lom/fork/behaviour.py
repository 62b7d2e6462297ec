"""The policies that generate the fork's offline dataset, and vectorised rollouts of any policy in the fork."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lom.fork import world

Policy = Callable[[np.ndarray], np.ndarray]  # (n, 2) positions -> (n, 2) actions

APPROACH_Y = world.WALL_LOW - 1.5  # below this height a mode flies a straight line; above it, it lines up and climbs
ACTION_NOISE = 0.15
RANDOM_MODE = -1  # mode label of the few uniformly random episodes mixed into the dataset
RANDOM_EPISODE_FRACTION = 0.05
# The best gap is the rarest, as good behaviour is in mixed-quality data. With equally common modes, weighted
# imitation (IQL-style exp(3 * A)) still ends up on the best gap: one averaged step leaves the start, and the policy
# then locks onto whichever mode's states are nearest, which its weights bias toward the best one.
MODE_PROBS = np.array([0.1, 0.45, 0.45])
NUM_EPISODES = 2000


def mode_actions(positions: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Noise-free action of behaviour mode `modes[i]` (a gap index) at `positions[i]`.

    Below APPROACH_Y the heading is fixed (origin to the point below the gap, at full speed), not steered toward a
    waypoint: steering would make the mean of the modes hover below the wall and slide into the middle gap, whereas
    fixed headings make it fly straight into the wall. Above APPROACH_Y the mode climbs while centring on its gap.
    """
    gap_x = world.GAP_X[modes]
    heading = np.stack([gap_x, np.full_like(gap_x, APPROACH_Y)], axis=1)
    heading /= np.abs(heading).max(axis=1, keepdims=True)
    climb = np.stack([np.clip((gap_x - positions[:, 0]) / world.STEP, -1.0, 1.0), np.ones_like(gap_x)], axis=1)
    return np.where((positions[:, 1] < APPROACH_Y)[:, None], heading, climb)


def behaviour_policy(modes: np.ndarray, rng: np.random.Generator, noise: float = ACTION_NOISE) -> Policy:
    """Episode i follows mode `modes[i]` with clipped Gaussian action noise, or acts uniformly if it is RANDOM_MODE."""
    is_random = modes == RANDOM_MODE
    gap_modes = np.where(is_random, 0, modes)

    def act(positions: np.ndarray) -> np.ndarray:
        steered = mode_actions(positions, gap_modes) + noise * rng.standard_normal(positions.shape)
        uniform = rng.uniform(-1.0, 1.0, size=positions.shape)
        return np.clip(np.where(is_random[:, None], uniform, steered), -1.0, 1.0)

    return act


def uniform_policy(rng: np.random.Generator) -> Policy:
    return lambda positions: rng.uniform(-1.0, 1.0, size=positions.shape)


def mean_of_modes_policy(weights: Sequence[float] | None = None) -> Policy:
    """Weighted (default: equal) average of the noise-free modes' actions: what a unimodal imitator of the whole
    dataset drifts toward."""
    weights = np.ones(len(world.GAP_X)) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()

    def act(positions: np.ndarray) -> np.ndarray:
        per_mode = [mode_actions(positions, np.full(len(positions), k)) for k in range(len(weights))]
        return sum(w * a for w, a in zip(weights, per_mode))

    return act


@dataclass
class Episodes:
    """Per-step arrays shaped (episodes, MAX_EPISODE_STEPS, ...); `valid` marks steps that happened."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    valid: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        return (self.rewards * self.valid).sum(axis=1)

    @property
    def timeouts(self) -> np.ndarray:
        """True on the last step of episodes that the time limit cut."""
        last = np.zeros_like(self.valid)
        last[:, -1] = self.valid[:, -1] & ~self.terminals[:, -1]
        return last


def run_episodes(policy: Policy, num_episodes: int, rng: np.random.Generator) -> Episodes:
    """Run `num_episodes` episodes side by side until each terminates or hits MAX_EPISODE_STEPS."""
    shape = (num_episodes, world.MAX_EPISODE_STEPS)
    obs, acts, next_obs = (np.zeros(shape + (2,)) for _ in range(3))
    rewards = np.zeros(shape)
    terminals, valid = np.zeros(shape, bool), np.zeros(shape, bool)
    positions = world.reset_positions(rng, num_episodes)
    alive = np.ones(num_episodes, bool)
    for t in range(world.MAX_EPISODE_STEPS):
        actions = np.clip(policy(positions), -1.0, 1.0)
        next_positions, step_rewards, done = world.move(positions, actions)
        obs[:, t], acts[:, t], next_obs[:, t] = positions, actions, next_positions
        rewards[:, t], terminals[:, t], valid[:, t] = step_rewards, done, alive
        alive = alive & ~done
        positions = next_positions
    return Episodes(obs, acts, rewards, next_obs, terminals & valid, valid)


def mean_return(policy: Policy, num_episodes: int, seed: int) -> float:
    return float(run_episodes(policy, num_episodes, np.random.default_rng(seed)).returns.mean())


def generate_dataset(seed: int, num_episodes: int = NUM_EPISODES) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """D4RL-style rows (episodes back to back) plus `infos/mode` per row, and each gap mode's mean episode return."""
    rng = np.random.default_rng(seed)
    modes = rng.choice(len(world.GAP_X), size=num_episodes, p=MODE_PROBS)
    modes[rng.random(num_episodes) < RANDOM_EPISODE_FRACTION] = RANDOM_MODE
    episodes = run_episodes(behaviour_policy(modes, rng), num_episodes, rng)
    rows = episodes.valid  # boolean indexing keeps episode-major, time-ordered rows
    arrays = {
        "observations": episodes.observations[rows],
        "actions": episodes.actions[rows],
        "rewards": episodes.rewards[rows],
        "next_observations": episodes.next_observations[rows],
        "terminals": episodes.terminals[rows],
        "timeouts": episodes.timeouts[rows],
        "infos/mode": np.broadcast_to(modes[:, None], rows.shape)[rows].astype(np.int64),
    }
    mode_returns = np.array([episodes.returns[modes == k].mean() for k in range(len(world.GAP_X))])
    return arrays, mode_returns
