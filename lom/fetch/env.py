"""The Fetch tasks as gymnasium envs (`lom/FetchPushMultimodal-v0`, ...): the task wrapper of `lom.fetch.world`,
which scored the datasets, under a time limit of MAX_EPISODE_STEPS."""

from __future__ import annotations

import gymnasium

from lom.fetch.dataset import MAX_EPISODE_STEPS
from lom.fetch.world import TASKS


def register_envs() -> None:
    """Make each task's env id available to gymnasium.make (idempotent)."""
    for task in TASKS.values():
        if task.env_id not in gymnasium.registry:
            gymnasium.register(id=task.env_id, entry_point="lom.fetch.world:MultimodalFetchEnv",
                               kwargs={"task": task.name}, max_episode_steps=MAX_EPISODE_STEPS)
