"""gymnasium-robotics' Fetch environments, made to run on current MuJoCo.

gymnasium-robotics 1.4.2 (its newest release) reads and writes joints through helpers in
`gymnasium_robotics.utils.mujoco_utils` that check a joint's type with `assert model.jnt_type[i] in (mjtJoint...)`.
`x in (a, b)` asks `a == x`, and since mujoco 3.12 the enum's `==` against a numpy integer is False, so every Fetch
environment fails while it is built. Here the Fetch classes are subclassed so that their `_utils` is a stand-in that
answers the joint helpers itself (comparing plain ints) and passes every other name on to the library's module.
Nothing in the installed library is changed, and nothing global is patched.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import sys

import numpy as np

from lom.errors import LOMError

FETCH_CLASSES = {
    "FetchReach": ("gymnasium_robotics.envs.fetch.reach", "MujocoFetchReachEnv"),
    "FetchPush": ("gymnasium_robotics.envs.fetch.push", "MujocoFetchPushEnv"),
    "FetchPickAndPlace": ("gymnasium_robotics.envs.fetch.pick_and_place", "MujocoFetchPickAndPlaceEnv"),
}


@functools.cache
def _joint_widths() -> dict[int, tuple[int, int]]:
    """Coordinates each joint type (as a plain int) takes in qpos and in qvel."""
    import mujoco  # here: lom.data lists these datasets without loading MuJoCo

    joint = mujoco.mjtJoint
    return {int(joint.mjJNT_FREE): (7, 6), int(joint.mjJNT_BALL): (4, 3), int(joint.mjJNT_SLIDE): (1, 1),
            int(joint.mjJNT_HINGE): (1, 1)}


class _JointSafeUtils:
    """The library's mujoco_utils module with its joint helpers (and robot_get_obs, which calls them) replaced."""

    def __init__(self, library_utils) -> None:
        self._library = library_utils

    def __getattr__(self, name: str):
        return getattr(self._library, name)

    @staticmethod
    def _slice(model, name: str, velocity: bool) -> slice:
        import mujoco

        joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint_id == -1:
            raise KeyError(f"joint {name!r} is not part of the model")
        width = _joint_widths()[int(model.jnt_type[joint_id])][1 if velocity else 0]
        start = int((model.jnt_dofadr if velocity else model.jnt_qposadr)[joint_id])
        return slice(start, start + width)

    def get_joint_qpos(self, model, data, name):
        return data.qpos[self._slice(model, name, velocity=False)].copy()

    def get_joint_qvel(self, model, data, name):
        return data.qvel[self._slice(model, name, velocity=True)].copy()

    def set_joint_qpos(self, model, data, name, value):
        data.qpos[self._slice(model, name, velocity=False)] = value

    def set_joint_qvel(self, model, data, name, value):
        data.qvel[self._slice(model, name, velocity=True)] = value

    def robot_get_obs(self, model, data, joint_names):
        names = [n for n in joint_names if n.startswith("robot")] if data.qpos is not None and joint_names else []
        if not names:
            return np.zeros(0), np.zeros(0)
        return (np.squeeze(np.array([self.get_joint_qpos(model, data, n) for n in names])),
                np.squeeze(np.array([self.get_joint_qvel(model, data, n) for n in names])))


@functools.cache
def fetch_class(task: str) -> type:
    """The MuJoCo Fetch env class for `task` ("FetchReach", "FetchPush", "FetchPickAndPlace"), with joint-safe
    helpers. gymnasium-robotics is imported here, on first use, so that the rest of lom does not need it."""
    module_name, class_name = FETCH_CLASSES[task]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            mujoco_utils = importlib.import_module("gymnasium_robotics.utils.mujoco_utils")
            library_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise LOMError(f"the Fetch datasets need gymnasium-robotics ({exc}) — install it with "
                       "`pip install -r requirements.txt`") from exc
    finally:
        # gymnasium-robotics prints a notice about its Adroit hand tasks when imported; pass on anything else.
        sys.stderr.write("".join(line for line in printed.getvalue().splitlines(keepends=True)
                                 if "AdroitHand" not in line))

    def _initialize_simulation(self):
        # MujocoRobotEnv.__init__ sets self._utils and then builds the simulation, whose setup already moves joints.
        self._utils = _JointSafeUtils(mujoco_utils)
        library_class._initialize_simulation(self)

    return type(f"JointSafe{class_name}", (library_class,), {"_initialize_simulation": _initialize_simulation})
