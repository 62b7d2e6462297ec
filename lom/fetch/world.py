"""The three Fetch tasks with several goals of different worth: where the goals are, what each is worth, and the
task wrapper that scores an episode (the same one makes the datasets and evaluates policies).

Each task is one fixed job in a gymnasium-robotics Fetch scene (MuJoCo, the 7-DoF Fetch arm, actions: the
gripper's displacement in x, y, z and the finger command, in [-1, 1]). There are three goal zones, fixed in the
world: spheres of radius ZONE_RADIUS around `zones[k]`. The scored point — the gripper in Reach, the block in Push
and PickAndPlace — entering zone k ends the episode with reward `worths[k]`; every other step pays 0, and an episode
that reaches no zone in MAX_EPISODE_STEPS steps earns 0. The observation is Fetch's flat `observation` vector
(gripper, block, fingers and their velocities) without Fetch's randomly drawn goal: the zones never move, so
nothing in a state says which of them an episode is heading for.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

from lom.fetch.compat import fetch_class

MAX_EPISODE_STEPS = 50  # Fetch's own episode length
ZONE_RADIUS = 0.05  # Fetch's own success distance
NO_ZONE = -1  # an episode that reached no zone (and, for `classify_episode`, one that headed for none)
# At reset the gripper takes START_STEPS random displacements of at most START_JITTER (in action units), and the
# block (if any) is put at its nominal spot plus a uniform offset of at most OBJECT_JITTER metres in x and y.
START_STEPS = 2
START_JITTER = 0.4
OBJECT_JITTER = 0.02
# Slices of the flat Fetch observation (gymnasium_robotics BaseFetchEnv._get_obs).
GRIPPER = slice(0, 3)
BLOCK = slice(3, 6)
FINGERS = slice(9, 11)


@dataclass(frozen=True)
class FetchTask:
    """One task: its Fetch scene, its goal zones (world coordinates, metres) and what reaching each is worth."""

    name: str  # the dataset's name
    env_id: str  # the gymnasium id of the task wrapper
    fetch: str  # the gymnasium-robotics scene ("FetchPush": the FetchPush-v4 model and controller)
    zones: tuple[tuple[float, float, float], ...]
    worths: tuple[float, ...]
    mode_names: tuple[str, ...]
    block_start: tuple[float, float] | None  # the block's nominal (x, y) on the table; None: no block

    @property
    def scored(self) -> slice:
        """The observation's slice holding the point that must reach a zone."""
        return GRIPPER if self.block_start is None else BLOCK

    @property
    def zone_array(self) -> np.ndarray:
        return np.asarray(self.zones, dtype=np.float64)


TABLE_Z = 0.4249  # the block's centre when it rests on the table
# The gripper starts (before the jitter) at (1.342, 0.749, 0.535) in Reach and PickAndPlace and at (1.363, 0.749,
# 0.416) in Push; the zones sit around those starts, inside the table's top (x 1.05-1.55, y 0.40-1.10).
TASKS = {
    task.name: task
    for task in (
        FetchTask(
            name="fetch-reach-multimodal-v0",
            env_id="lom/FetchReachMultimodal-v0",
            fetch="FetchReach",
            # 0.25 m from the start, 120 degrees apart in the horizontal plane: left, back-right, front-right.
            zones=((1.342, 0.999, 0.535), (1.125, 0.624, 0.535), (1.559, 0.624, 0.535)),
            worths=(1.0, 0.6, 0.3),
            mode_names=("left", "back-right", "front-right"),
            block_start=None,
        ),
        FetchTask(
            name="fetch-push-multimodal-v0",
            env_id="lom/FetchPushMultimodal-v0",
            fetch="FetchPush",
            # The block starts between the robot and the gripper; it is pushed 0.15 m to the right, to the left
            # (the gripper first goes over it to its other side) or toward the robot (straight ahead of the gripper).
            zones=((1.28, 0.60, TABLE_Z), (1.28, 0.90, TABLE_Z), (1.13, 0.75, TABLE_Z)),
            worths=(1.0, 0.6, 0.3),
            mode_names=("right", "left", "toward the robot"),
            block_start=(1.28, 0.75),
        ),
        FetchTask(
            name="fetch-pickandplace-multimodal-v0",
            env_id="lom/FetchPickAndPlaceMultimodal-v0",
            fetch="FetchPickAndPlace",
            # The block starts under the gripper; it is lifted and held up 0.15 m to the right, to the left or ahead.
            zones=((1.34, 0.60, 0.575), (1.34, 0.90, 0.575), (1.49, 0.75, 0.575)),
            worths=(1.0, 0.6, 0.3),
            mode_names=("right", "left", "ahead"),
            block_start=(1.34, 0.75),
        ),
    )
}
ENV_IDS = {task.env_id: task for task in TASKS.values()}


class MultimodalFetchEnv(gymnasium.Env):
    """A Fetch scene scored by its task's zones (see the module's docstring). Observation: Fetch's flat observation
    (float32); action: Fetch's 4 numbers in [-1, 1]. `info["zone"]` names the zone reached (NO_ZONE before)."""

    metadata = {"render_modes": []}

    def __init__(self, task: str) -> None:
        self.task = TASKS[task]
        self.fetch = fetch_class(self.task.fetch)(reward_type="sparse")
        size = self.fetch.observation_space["observation"].shape
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=size, dtype=np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._zones = self.task.zone_array

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Fetch's own generator draws its unused goal (and a block position that is replaced below).
        self.fetch.reset(seed=int(self.np_random.integers(2**31)))
        if self.task.block_start is not None:
            self._place_block(np.asarray(self.task.block_start) + self.np_random.uniform(-1, 1, 2) * OBJECT_JITTER)
        for _ in range(START_STEPS):
            nudge = np.zeros(4)
            nudge[:3] = self.np_random.uniform(-START_JITTER, START_JITTER, 3)
            self.fetch.step(nudge)
        return self._observation(), {"zone": NO_ZONE}

    def step(self, action):
        fetch_obs, _, _, _, _ = self.fetch.step(np.asarray(action, dtype=np.float32).reshape(4))
        observation = fetch_obs["observation"].astype(np.float32)
        zone = zone_reached(observation[None], self.task)[0]
        reward = self.task.worths[zone] if zone != NO_ZONE else 0.0
        return observation, float(reward), zone != NO_ZONE, False, {"zone": int(zone)}

    def _observation(self) -> np.ndarray:
        return self.fetch._get_obs()["observation"].astype(np.float32)

    def _place_block(self, xy: np.ndarray) -> None:
        fetch = self.fetch
        qpos = fetch._utils.get_joint_qpos(fetch.model, fetch.data, "object0:joint")
        qpos[:2] = xy
        fetch._utils.set_joint_qpos(fetch.model, fetch.data, "object0:joint", qpos)
        fetch._mujoco.mj_forward(fetch.model, fetch.data)

    def close(self) -> None:
        self.fetch.close()
        super().close()


def zone_reached(observations: np.ndarray, task: FetchTask) -> np.ndarray:
    """For each observation (rows), the zone its scored point lies in, or NO_ZONE."""
    distances = np.linalg.norm(observations[:, None, task.scored] - task.zone_array[None], axis=-1)
    inside = distances < ZONE_RADIUS
    return np.where(inside.any(axis=1), distances.argmin(axis=1), NO_ZONE)


def classify_episode(observations: np.ndarray, task: FetchTask) -> int:
    """Which strategy an episode followed, from the observations it visited (the reset's first): the zone its
    scored point ended nearest to, if it got there at least half of the way from where it started, else NO_ZONE.
    An episode that reached a zone is always classified as that zone's strategy."""
    observations = np.asarray(observations, dtype=np.float64)
    start, end = observations[0, task.scored], observations[-1, task.scored]
    reached = zone_reached(observations[-1:], task)[0]
    if reached != NO_ZONE:
        return int(reached)
    to_end = np.linalg.norm(task.zone_array - end, axis=1)
    nearest = int(to_end.argmin())
    return nearest if to_end[nearest] <= 0.5 * np.linalg.norm(task.zone_array[nearest] - start) else NO_ZONE
