"""Minari datasets (`minari:<id>`): their evaluation env, reference scores, and episodes as D4RL-layout rows."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import gymnasium
import numpy as np
from tqdm import tqdm

from lom.data.d4rl_file import validate_d4rl_arrays
from lom.data.transitions import build_transitions
from lom.data.types import RAW_RETURN_REFS, DatasetSpec, Transitions
from lom.errors import LOMError

MINARI_PREFIX = "minari:"
# Minari's MuJoCo datasets: mujoco/<env>/<kind>-v<n>, e.g. mujoco/halfcheetah/medium-v0.
MUJOCO_ID = re.compile(r"mujoco/(?P<env>[a-z0-9]+)/(?P<kind>[a-z-]+)-v\d+")


def minari_mujoco_kind(dataset_id: str) -> tuple[str, str] | None:
    """(env, kind) of a Minari MuJoCo id (mujoco/hopper/medium-v0 -> hopper, medium); None for other ids."""
    found = MUJOCO_ID.fullmatch(dataset_id.lower())
    return (found["env"], found["kind"]) if found else None


def resolve_minari(dataset_id: str) -> DatasetSpec:
    """Spec for a Minari dataset, downloading it into the local Minari store if it is not there yet."""
    dataset = _load(dataset_id)
    env_spec = dataset.env_spec
    if env_spec is None:
        raise LOMError(
            f"Minari dataset '{dataset_id}' records no environment, so it cannot be evaluated — pick another"
        )
    ref_min, ref_max = _reference_scores(dataset_id, dataset.storage.metadata)
    return DatasetSpec(
        name=f"{MINARI_PREFIX}{dataset_id}",
        source="minari",
        env_id=env_spec.id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        max_episode_steps=env_spec.max_episode_steps,
    )


def load_minari_transitions(spec: DatasetSpec, progress: bool = True) -> Transitions:
    dataset = _load(_dataset_id(spec))
    episodes = tqdm(
        dataset.iterate_episodes(), total=dataset.total_episodes, desc=spec.name, unit="episode", disable=not progress
    )
    arrays = episodes_to_d4rl_arrays(episodes, dataset.action_space, source=spec.name)
    return build_transitions(validate_d4rl_arrays(arrays, spec.name), spec.max_episode_steps, spec.name)


def recover_minari_env(spec: DatasetSpec) -> gymnasium.Env:
    """The env exactly as the dataset recorded it (including any non-default constructor arguments)."""
    return _load(_dataset_id(spec)).recover_environment()


def episodes_to_d4rl_arrays(episodes: Iterable, action_space: gymnasium.Space, source: str) -> dict[str, np.ndarray]:
    """Concatenate Minari episodes (T + 1 observations, T steps each) into D4RL rows with actions in [-1, 1].

    A final step that was not a termination is flagged as a timeout: its next action does not exist.
    """
    low, high = _action_bounds(action_space, source)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "next_observations", "actions", "rewards")}
    terminals, timeouts = [], []
    for episode in episodes:
        if len(episode.rewards) == 0:
            continue
        observations = episode.observations
        if not isinstance(observations, np.ndarray) or observations.ndim != 2:
            raise LOMError(f"{source}: observations are not flat arrays — only Box observation spaces are supported")
        columns["observations"].append(observations[:-1])
        columns["next_observations"].append(observations[1:])
        columns["actions"].append(2.0 * (np.asarray(episode.actions, dtype=np.float64) - low) / (high - low) - 1.0)
        columns["rewards"].append(np.asarray(episode.rewards))
        ends = np.asarray(episode.terminations, dtype=bool)
        terminals.append(ends)
        cut = np.zeros(len(ends), dtype=bool)
        cut[-1] = not ends[-1]
        timeouts.append(cut)
    if not terminals:
        raise LOMError(f"{source}: the dataset has no episodes — pick another")
    arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    arrays["terminals"] = np.concatenate(terminals)
    arrays["timeouts"] = np.concatenate(timeouts)
    return arrays


def _dataset_id(spec: DatasetSpec) -> str:
    return spec.name[len(MINARI_PREFIX) :]


def _import_minari():
    try:
        import minari
    except ImportError:
        raise LOMError('Minari datasets need the minari package with its download support — pip install '
                       '"minari[hf]>=0.5" (or pip install -r requirements.txt)') from None
    return minari


def _load(dataset_id: str):
    minari = _import_minari()
    try:
        return minari.load_dataset(dataset_id, download=True)
    # Minari fails in many ways (bad id, no network, remote storage errors); all mean "cannot get this dataset".
    except Exception as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise LOMError(
            f"cannot load Minari dataset '{dataset_id}' ({reason}) — check the id; without network access it must "
            "already be in the local Minari store ($MINARI_DATASETS_PATH or ~/.minari/datasets)"
        ) from None


def _reference_scores(dataset_id: str, metadata: dict) -> tuple[float, float]:
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if ref_min is None or ref_max is None or float(ref_min) == float(ref_max):
        warnings.warn(
            f"Minari dataset '{dataset_id}' has no reference scores: normalized scores will equal raw returns",
            stacklevel=3,
        )
        return RAW_RETURN_REFS
    return float(ref_min), float(ref_max)


def _action_bounds(action_space: gymnasium.Space, source: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(action_space, gymnasium.spaces.Box):
        raise LOMError(f"{source}: actions are {action_space}, but only continuous (Box) actions are supported")
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise LOMError(
            f"{source}: the action space {action_space} is unbounded, so actions cannot be mapped to [-1, 1]"
        )
    return low, high
