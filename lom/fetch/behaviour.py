"""The scripted demonstrators that make the Fetch datasets, and episodes of any policy in a Fetch task.

Each task has one demonstrator per zone (a "mode"): a waypoint controller that reads only the observation and
drives the scored point (gripper or block) into its zone, with Gaussian noise on every action, so that each mode's
episodes spread around its path and now and then fail. The modes share their first moves (leaving the start, or
picking the block up) and part where they head for different zones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lom.fetch import world

Policy = Callable[[np.ndarray], np.ndarray]  # one observation -> one action in [-1, 1]^4

ACTION_NOISE = 0.2  # standard deviation of the noise on the three displacement actions
FINGER_NOISE = 0.1  # ... and on the finger command
GAIN = 15.0  # action per metre of waypoint error (full speed, 0.05 m a step, beyond 6.7 cm)
# The best zone is the rarest, as good behaviour is in mixed-quality data; the others are common.
MODE_PROBS = (0.15, 0.35, 0.5)
NUM_EPISODES = {"FetchReach": 2000, "FetchPush": 1500, "FetchPickAndPlace": 1000}

# Push: the gripper pushes from PUSH_BEHIND metres behind the block's centre, travels at PUSH_CLEARANCE above the
# block's top when it must get round the block, and steers sideways to keep the block on the line to its zone.
PUSH_BEHIND = 0.055
PUSH_CLEARANCE = 0.08
OPEN, CLOSE = 1.0, -1.0
# PickAndPlace: the fingers count as closed on the block below this opening (the block is 5 cm wide).
GRIP_WIDTH = 0.052


def _towards(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.clip(GAIN * (target - position), -1.0, 1.0)


def reach_action(obs: np.ndarray, task: world.FetchTask, mode: int) -> np.ndarray:
    """Straight to the zone (the fingers are blocked in Reach)."""
    return np.append(_towards(obs[world.GRIPPER], task.zone_array[mode]), 0.0)


def push_action(obs: np.ndarray, task: world.FetchTask, mode: int) -> np.ndarray:
    """Get behind the block as seen from the zone (over the top if needed), come down, and push it along the line."""
    gripper, block = obs[world.GRIPPER].astype(np.float64), obs[world.BLOCK].astype(np.float64)
    line = task.zone_array[mode, :2] - block[:2]
    direction = line / max(np.linalg.norm(line), 1e-6)
    offset = gripper[:2] - block[:2]
    along = offset @ direction
    side = offset - along * direction
    behind = -0.12 < along < -0.03 and np.linalg.norm(side) < 0.02
    low = gripper[2] < block[2] + 0.02
    high_z = block[2] + PUSH_CLEARANCE
    if behind and low:  # push: along the line, steering back onto it
        target = np.append(gripper[:2] + 0.1 * direction - 1.5 * side, block[2] - 0.005)
    elif behind:  # come down behind the block
        target = np.append(block[:2] - PUSH_BEHIND * direction, block[2] - 0.005)
    elif gripper[2] < high_z - 0.02 and np.linalg.norm(offset) < 0.09:  # too close to go round: rise first
        target = np.append(gripper[:2], high_z)
    else:  # over to the pushing spot
        target = np.append(block[:2] - PUSH_BEHIND * direction, high_z)
    return np.append(_towards(gripper, target), 0.0)


def pick_and_place_action(obs: np.ndarray, task: world.FetchTask, mode: int) -> np.ndarray:
    """Open above the block, come down, close on it, then carry it to the zone."""
    gripper, block = obs[world.GRIPPER].astype(np.float64), obs[world.BLOCK].astype(np.float64)
    opening = float(obs[world.FINGERS].sum())
    apart = block - gripper
    if np.linalg.norm(apart) < 0.02 and opening < GRIP_WIDTH:  # holding it: carry it to the zone
        return np.append(_towards(block, task.zone_array[mode]), CLOSE)
    if np.linalg.norm(apart[:2]) > 0.012:  # above the block, fingers open
        height = block[2] + (0.06 if np.linalg.norm(apart[:2]) > 0.04 else 0.0)
        return np.append(_towards(gripper, np.append(block[:2], max(height, gripper[2]))), OPEN)
    if apart[2] < -0.008:  # down onto it
        return np.append(_towards(gripper, block), OPEN)
    return np.append(np.zeros(3), CLOSE)  # close the fingers


MODE_ACTIONS = {"FetchReach": reach_action, "FetchPush": push_action, "FetchPickAndPlace": pick_and_place_action}


def demonstrator(task: world.FetchTask, mode: int, rng: np.random.Generator, noise: float = ACTION_NOISE) -> Policy:
    """The mode's controller with clipped Gaussian action noise from `rng` (noise 0: the noise-free controller)."""
    controller = MODE_ACTIONS[task.fetch]
    scale = np.array([noise, noise, noise, FINGER_NOISE * (noise > 0)])

    def act(obs: np.ndarray) -> np.ndarray:
        action = controller(obs, task, mode) + scale * rng.standard_normal(4)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return act


def mean_of_modes_policy(task: world.FetchTask, weights=None) -> Policy:
    """The weighted (default: equal) average of the noise-free modes' actions: what a unimodal imitator of the
    whole dataset drifts toward. In every task it reaches no zone."""
    weights = np.full(len(task.zones), 1 / len(task.zones)) if weights is None else np.asarray(weights) / sum(weights)
    controller = MODE_ACTIONS[task.fetch]
    return lambda obs: np.clip(sum(w * controller(obs, task, k) for k, w in enumerate(weights)), -1.0,
                               1.0).astype(np.float32)


def uniform_policy(rng: np.random.Generator) -> Policy:
    return lambda obs: rng.uniform(-1.0, 1.0, 4).astype(np.float32)


@dataclass
class Episode:
    observations: np.ndarray  # (T + 1, obs dim): the reset's observation and every step's
    actions: np.ndarray  # (T, 4), float32, exactly as stepped
    rewards: np.ndarray  # (T,)
    terminated: bool
    zone: int  # the zone reached, or world.NO_ZONE

    @property
    def total(self) -> float:
        return float(self.rewards.sum())


def run_episode(env: world.MultimodalFetchEnv, policy: Policy, reset_seed: int) -> Episode:
    """One episode of `policy` from `env.reset(seed=reset_seed)`, until a zone or MAX_EPISODE_STEPS."""
    obs, info = env.reset(seed=reset_seed)
    observations, actions, rewards = [obs], [], []
    terminated = False
    for _ in range(world.MAX_EPISODE_STEPS):
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, reward, terminated, _, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        if terminated:
            break
    return Episode(np.array(observations), np.array(actions), np.array(rewards), terminated, int(info["zone"]))


def reset_seeds(seed: int, num_episodes: int) -> np.ndarray:
    """The reset seed of each of a dataset's episodes."""
    return np.random.default_rng([seed, 1]).integers(2**31, size=num_episodes)


def draw_modes(seed: int, num_episodes: int) -> np.ndarray:
    return np.random.default_rng([seed, 2]).choice(len(MODE_PROBS), size=num_episodes, p=MODE_PROBS)


def demonstration(env: world.MultimodalFetchEnv, seed: int, episode: int, mode: int, reset_seed: int) -> Episode:
    """Episode number `episode` of the dataset made from `seed`: its noise has its own generator, so any one
    episode can be made again alone."""
    rng = np.random.default_rng([seed, 3, episode])
    return run_episode(env, demonstrator(env.task, mode, rng), reset_seed)


def generate_episodes(task: world.FetchTask, seed: int, num_episodes: int | None = None
                      ) -> tuple[list[Episode], np.ndarray, np.ndarray]:
    """The dataset's episodes, with each one's mode and reset seed."""
    num_episodes = NUM_EPISODES[task.fetch] if num_episodes is None else num_episodes
    modes, seeds = draw_modes(seed, num_episodes), reset_seeds(seed, num_episodes)
    env = world.MultimodalFetchEnv(task.name)
    try:
        episodes = [demonstration(env, seed, i, int(m), int(s)) for i, (m, s) in enumerate(zip(modes, seeds))]
    finally:
        env.close()
    return episodes, modes, seeds


def mean_return(task: world.FetchTask, make_policy: Callable[[np.random.Generator], Policy], num_episodes: int,
                seed: int) -> float:
    """Mean return of `make_policy(rng)` over `num_episodes` episodes, deterministic in `seed`."""
    rng = np.random.default_rng([seed, 4])
    env = world.MultimodalFetchEnv(task.name)
    try:
        return float(np.mean([run_episode(env, make_policy(rng), int(s)).total
                              for s in reset_seeds(seed + 1000, num_episodes)]))
    finally:
        env.close()
