"""Refuse, before any training step, data whose sizes do not fit the environment it is evaluated in or the
behaviour mixture given with --gmm_path: otherwise the mismatch only shows up as a shape error at the first
evaluation, after the whole training schedule."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import torch

from lom.config import TrainConfig
from lom.data import load_transitions
from lom.data.types import DatasetSpec, Transitions
from lom.envs import make_env
from lom.errors import LOMError
from lom.networks import GaussianMixture


def load_checked(spec: DatasetSpec, cfg: TrainConfig) -> tuple[Transitions, dict | None]:
    """The transitions and LOM's --gmm_path mixture, refused if their sizes do not fit."""
    transitions = load_transitions(spec)
    check_env_fit(spec, transitions.obs_dim, transitions.act_dim)
    mixture = load_mixture(cfg.gmm_path) if cfg.gmm_path and cfg.agent == "LOM" else None
    if mixture is not None:
        check_mixture_fit(mixture, cfg.gmm_path, transitions.obs_dim, transitions.act_dim, cfg.num_components,
                          cfg.gmm_hidden_width)
    return transitions, mixture


def env_sizes(spec: DatasetSpec) -> tuple:
    """The evaluation env's observation and action sizes (a flat Box's length, any other space as it prints)."""
    env = make_env(spec)
    try:
        return _size(env.observation_space), _size(env.action_space)
    finally:
        env.close()


def env_action_dim(spec: DatasetSpec) -> int | None:
    """The length of the evaluation env's actions (the data's must equal it, see `check_env_fit`); None if not a
    flat Box."""
    size = env_sizes(spec)[1]
    return size if isinstance(size, int) else None


def check_env_fit(spec: DatasetSpec, obs_dim: int, act_dim: int) -> None:
    """The dataset's observation and action sizes must be the evaluation env's; LOMError naming both if not."""
    env_obs, env_act = env_sizes(spec)
    fix = f"give --env_name the env the data were collected in, or a dataset made in {spec.env_id}"
    if env_obs != obs_dim:
        raise LOMError(f"{_data(spec)} has {obs_dim}-dimensional observations, but {spec.env_id} observes {env_obs}: "
                       f"{fix}")
    if env_act != act_dim:
        raise LOMError(f"{_data(spec)} has {act_dim}-dimensional actions, but {spec.env_id} takes {env_act}: {fix}")


def load_mixture(path: str) -> dict:
    """The contents of a --gmm_path file; one LOMError line if it is missing or cannot be read as a mixture file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LOMError(f"--gmm_path: the mixture file {file} does not exist (give a run's gmm.pt)")
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which one, not a pickle traceback
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise LOMError(f"--gmm_path: cannot read the mixture file {file} ({reason}) — give a behaviour mixture "
                       "saved by train.py (a run's gmm.pt)") from None


def check_mixture_fit(mixture: dict, path: str, obs_dim: int, act_dim: int, components: int, width: int) -> None:
    """A saved mixture (a gmm.pt's contents) must take the dataset's observations and describe its actions with
    `components` components through hidden layers `width` wide; LOMError naming both sizes if not."""
    fix = "give the gmm.pt of a run on this dataset, or drop --gmm_path to pre-train a mixture"
    state = mixture.get("gmm") if isinstance(mixture, dict) else None
    if isinstance(state, dict) and any(key.startswith("net.") for key in state) \
            and not any(key.startswith("net.layers.") for key in state):
        raise LOMError(f"--gmm_path {path} was saved by a version of this code before networks had a seed axis "
                       "(commits up to 0b3ab6d): load it with that version, or drop --gmm_path to pre-train anew")
    try:
        mixture_obs, mixture_width, outputs = GaussianMixture.sizes(mixture["gmm"])
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LOMError(f"--gmm_path {path} holds no behaviour mixture: {fix}") from None
    if mixture_obs != obs_dim:
        raise LOMError(f"--gmm_path {path} is a mixture over {mixture_obs}-dimensional observations, but the "
                       f"dataset's have {obs_dim}: {fix}")
    per_component = GaussianMixture.outputs(1, act_dim)
    if outputs == GaussianMixture.outputs(components, act_dim):
        if mixture_width != width:
            raise LOMError(f"--gmm_path {path} has hidden layers {mixture_width} wide, but --gmm_hidden_width is "
                           f"{width}: pass --gmm_hidden_width {mixture_width}")
        return
    if outputs % per_component == 0:
        raise LOMError(f"--gmm_path {path} has {outputs // per_component} components, but --num_components is "
                       f"{components}: pass --num_components {outputs // per_component}")
    raise LOMError(f"--gmm_path {path} is not a mixture over the dataset's {act_dim}-dimensional actions (it "
                   f"outputs {outputs} numbers per state, not a multiple of {per_component}): {fix}")


def _size(space: gymnasium.Space):
    """A flat Box's length; any other space as gymnasium prints it (it cannot match a dataset's rows)."""
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        return space.shape[0]
    return space


def _data(spec: DatasetSpec) -> str:
    return f"the dataset {spec.path}" if spec.path else f"the dataset {spec.name}"
