"""Which way a MuJoCo runner went in an episode, read from its observations alone: the mode label of the multimodal
locomotion data (`lom.collect.multimodal`) and of an agent's evaluation episodes on it.

gymnasium's locomotion envs leave the root's x position out of the observation but keep its x velocity (qvel[0]),
at an index that depends on the body: HalfCheetah-v4's 17 numbers are qpos[1:] (8) then qvel (9), so the forward
velocity is observation 8. The indices below hold for the envs' default observation
(exclude_current_positions_from_observation=True; setting it False shifts them by one) and are checked against
`data.qvel[0]` in tests/test_collect_multimodal.py. numpy only, so plotting code can import it cheaply.
"""

from __future__ import annotations

import re

import numpy as np

# Env family (lower-case id without version) -> index of the root's x velocity in the observation.
X_VELOCITY_INDEX = {"halfcheetah": 8, "hopper": 5, "walker2d": 8, "ant": 13}
FORWARD, NOWHERE, BACKWARD = 1, 0, -1
DIRECTION_NAMES = {FORWARD: "forward", NOWHERE: "nowhere", BACKWARD: "backward"}
# Mean speeds below this (m/s) count as going nowhere. HalfCheetah-v4's uniform random policy averages about
# -0.1 m/s and a trained runner several m/s either way, so half a metre per second separates them with room to spare.
MIN_SPEED = 0.5


def x_velocity_index(env_id: str) -> int:
    family = re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1]).lower()
    if family not in X_VELOCITY_INDEX:
        raise ValueError(f"no known x-velocity observation for {env_id} (known: {', '.join(X_VELOCITY_INDEX)})")
    return X_VELOCITY_INDEX[family]


def running_direction(env_id: str, observations: np.ndarray, min_speed: float = MIN_SPEED) -> int:
    """FORWARD (+1) or BACKWARD (-1) by the sign of the episode's mean root x velocity, NOWHERE (0) when its
    magnitude is below `min_speed` (pass 0 for the bare sign). `observations`: one episode's rows (T, obs_dim)."""
    mean = float(np.mean(np.asarray(observations)[:, x_velocity_index(env_id)]))
    if abs(mean) < min_speed:
        return NOWHERE
    return FORWARD if mean > 0 else BACKWARD


def episode_directions(env_id: str, observations: np.ndarray, episode: np.ndarray,
                       min_speed: float = MIN_SPEED) -> np.ndarray:
    """The direction of every episode in D4RL rows whose `episode` array (e.g. `infos/episode`) numbers each row's
    episode 0, 1, ...: one label per episode, in episode order."""
    episode = np.asarray(episode)
    return np.array([running_direction(env_id, observations[episode == k], min_speed)
                     for k in range(int(episode.max()) + 1)], dtype=np.int64)
