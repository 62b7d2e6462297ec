"""The built-in multimodal benchmark as a gymnasium env, over the same dynamics that generate its dataset
(`lom.fork.world`, `lom.fork.dataset`)."""

from __future__ import annotations

import gymnasium
import numpy as np

from lom.fork import world
from lom.fork.dataset import ENV_ID, MAX_EPISODE_STEPS


class MultimodalForkEnv(gymnasium.Env):
    """Observation: the (x, y) position (float32). Action: a velocity in [-1, 1]^2, scaled by world.STEP."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gymnasium.spaces.Box(
            low=np.array([world.X_LIMITS[0], world.Y_LIMITS[0]], dtype=np.float32),
            high=np.array([world.X_LIMITS[1], world.Y_LIMITS[1]], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._position = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._position = world.reset_positions(self.np_random, 1)[0]
        return self._position.astype(np.float32), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(1, 2)
        next_position, reward, terminated = world.move(self._position[None], action)
        self._position = next_position[0]
        return self._position.astype(np.float32), float(reward[0]), bool(terminated[0]), False, {}


def register_env() -> None:
    """Make ENV_ID available to gymnasium.make (idempotent)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=f"{__name__}:MultimodalForkEnv", max_episode_steps=MAX_EPISODE_STEPS)
