"""Dataset names -> DatasetSpec: the 18 D4RL locomotion v2 datasets, the built-in fork and Fetch datasets, Minari ids
and files."""

from __future__ import annotations

import dataclasses
import difflib
import re
import warnings
from pathlib import Path

import gymnasium
import h5py

from lom.config import D4RL_ENVS, D4RL_KINDS
from lom.data.d4rl_file import folder_message
from lom.data.minari_source import MINARI_PREFIX, minari_mujoco_kind, resolve_minari
from lom.data.types import RAW_RETURN_REFS, DatasetSpec
from lom.errors import LOMError
from lom.fetch import dataset as fetch_dataset
from lom.fork import dataset as fork_dataset

D4RL_URL_ROOT = "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2"
D4RL_EPISODE_STEPS = 1000
# Each of config.D4RL_ENVS -> (gymnasium env used for evaluation, REF_MIN_SCORE, REF_MAX_SCORE), from D4RL's infos.
D4RL_REFERENCES = {
    "halfcheetah": ("HalfCheetah-v4", -280.178953, 12135.0),
    "hopper": ("Hopper-v4", -20.272305, 3234.3),
    "walker2d": ("Walker2d-v4", 1.629008, 4592.3),
}
# Env ids of this package's own environments (registered with gymnasium by lom.envs), with their episode limits.
BUILTIN_ENVS = {
    fork_dataset.ENV_ID: fork_dataset.MAX_EPISODE_STEPS,
    **{fetch_dataset.world.TASKS[name].env_id: fetch_dataset.MAX_EPISODE_STEPS for name in fetch_dataset.DATASET_NAMES},
}


def _d4rl_spec(env: str, kind: str) -> DatasetSpec:
    env_id, ref_min, ref_max = D4RL_REFERENCES[env]
    file_name = f"{env}_{kind.replace('-', '_')}-v2.hdf5"
    return DatasetSpec(
        name=f"{env}-{kind}-v2",
        source="d4rl",
        env_id=env_id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        url=f"{D4RL_URL_ROOT}/{file_name}",
        max_episode_steps=D4RL_EPISODE_STEPS,
        standard_name=f"{env}-{kind}-v2",
        env_family=env,
        kind=kind,
    )


D4RL_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (_d4rl_spec(env, kind) for env in D4RL_ENVS for kind in D4RL_KINDS)
}


def resolve_dataset(env_name: str, dataset_path: str | None = None) -> DatasetSpec:
    """Turn a user-given dataset name (and optionally a D4RL-format HDF5 file) into a DatasetSpec.

    Names: a D4RL locomotion v2 name (any case), `multimodal-fork-v0`, a Fetch dataset (`fetch-push-multimodal-v0`,
    ...), or `minari:<dataset id>`. With
    `dataset_path`, the name may instead be a gymnasium env id; reference scores then come from the file.
    """
    name = env_name.strip()
    if name.lower().startswith(MINARI_PREFIX):
        if dataset_path is not None:
            raise LOMError(f"'{name}' is a Minari dataset, which cannot be combined with a dataset file — drop one")
        return _minari_as_d4rl(resolve_minari(name[len(MINARI_PREFIX) :]))
    known = _named_spec(name)
    if dataset_path is None:
        if known is None:
            raise LOMError(f"unknown dataset '{name}'{_suggestions(name, _dataset_names())} — {_NAMES_HELP}")
        return known
    path = _existing_file(dataset_path)
    if known is not None:
        return DatasetSpec(
            name=known.name,
            source="file",
            env_id=known.env_id,
            ref_min_score=known.ref_min_score,
            ref_max_score=known.ref_max_score,
            path=str(path),
            max_episode_steps=known.max_episode_steps,
            standard_name=known.standard_name,
            env_family=known.env_family,
            kind=known.kind,
        )
    return _file_spec_for_env(name, path)


def _minari_as_d4rl(spec: DatasetSpec) -> DatasetSpec:
    """A Minari MuJoCo id (mujoco/<env>/<kind>-v<n>, the maintained successors of D4RL's datasets) is a standard
    id: it gets its environment and kind, and the D4RL name <env>-<kind>-v2 where D4RL has that dataset."""
    found = minari_mujoco_kind(spec.name[len(MINARI_PREFIX) :])
    if found is None:
        return spec
    env, kind = found
    d4rl_name = f"{env}-{kind}-v2"
    return dataclasses.replace(spec, standard_name=d4rl_name if d4rl_name in D4RL_DATASETS else None,
                               env_family=env, kind=kind)


_NAMES_HELP = (
    "use a D4RL locomotion name like halfcheetah-medium-v2, multimodal-fork-v0, fetch-push-multimodal-v0 or "
    "minari:<dataset id> "
    "(with a dataset file, a gymnasium env id like HalfCheetah-v4)"
)


def _named_spec(name: str) -> DatasetSpec | None:
    key = name.lower()
    if key in D4RL_DATASETS:
        return D4RL_DATASETS[key]
    if key == fork_dataset.DATASET_NAME.lower():
        return _builtin_fork_spec()
    if key in fetch_dataset.DATASET_NAMES:
        return _builtin_fetch_spec(key)
    return None


def _builtin_fork_spec() -> DatasetSpec:
    return DatasetSpec(
        name=fork_dataset.DATASET_NAME,
        standard_name=fork_dataset.DATASET_NAME,
        source="builtin",
        env_id=fork_dataset.ENV_ID,
        ref_min_score=float(fork_dataset.REF_MIN_SCORE),
        ref_max_score=float(fork_dataset.REF_MAX_SCORE),
        max_episode_steps=int(fork_dataset.MAX_EPISODE_STEPS),
    )


def _builtin_fetch_spec(name: str) -> DatasetSpec:
    ref_min, ref_max = fetch_dataset.REFERENCES[name]
    return DatasetSpec(
        name=name,
        standard_name=name,
        source="builtin",
        env_id=fetch_dataset.world.TASKS[name].env_id,
        ref_min_score=float(ref_min),
        ref_max_score=float(ref_max),
        max_episode_steps=int(fetch_dataset.MAX_EPISODE_STEPS),
    )


def _dataset_names() -> list[str]:
    return [*D4RL_DATASETS, fork_dataset.DATASET_NAME, *fetch_dataset.DATASET_NAMES]


def _suggestions(name: str, candidates: list[str]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(by_lower[c] for c in close)}?)" if close else ""


def _existing_file(dataset_path: str) -> Path:
    path = Path(dataset_path).expanduser()
    if path.is_dir():
        raise LOMError(folder_message(path))
    if not path.is_file():
        raise LOMError(f"dataset file {path} does not exist — check the path")
    return path


def _file_spec_for_env(name: str, path: Path) -> DatasetSpec:
    env_id, max_episode_steps = _env_of(name)
    ref_min, ref_max = _file_reference_scores(path)
    return DatasetSpec(
        name=path.stem,
        source="file",
        env_id=env_id,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        path=str(path),
        max_episode_steps=max_episode_steps,
        **_recorded_kind(path),
    )


def env_family_of(env_id: str) -> str:
    """An env id's family in D4RL's words: lower case, without namespace or version (HalfCheetah-v4 -> halfcheetah)."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1]).lower()


def _recorded_kind(path: Path) -> dict:
    """The environment family and kind a file records (`metadata/env_id`, `metadata/kind`, as lom.collect writes
    them); each None when the file records nothing."""
    def text(f, key: str) -> str | None:
        if key not in f:
            return None
        value = f[key][()]
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            env_id, kind = text(f, "metadata/env_id"), text(f, "metadata/kind")
    except (OSError, TypeError, ValueError) as e:
        raise LOMError(f"cannot read metadata from {path} ({e}) — is it a D4RL-format HDF5 file?") from None
    return {"env_family": env_family_of(env_id) if env_id else None, "kind": kind}


def _env_of(name: str) -> tuple[str, int | None]:
    """The env id as registered (any capitalisation accepted) and its episode limit."""
    env_ids = [*BUILTIN_ENVS, *gymnasium.envs.registry]
    by_lower = {env_id.lower(): env_id for env_id in env_ids}
    if name.lower() not in by_lower:
        raise LOMError(
            f"'{name}' is neither a known dataset nor a gymnasium env id{_suggestions(name, [*_dataset_names(), *env_ids])}"
            f" — {_NAMES_HELP}"
        )
    env_id = by_lower[name.lower()]
    if env_id in BUILTIN_ENVS:
        return env_id, BUILTIN_ENVS[env_id]
    return env_id, gymnasium.spec(env_id).max_episode_steps


def _file_reference_scores(path: Path) -> tuple[float, float]:
    try:
        with h5py.File(path, "r") as f:
            found = {
                k: float(f[f"metadata/{k}"][()]) for k in ("ref_min_score", "ref_max_score") if f"metadata/{k}" in f
            }
    except (OSError, TypeError, ValueError) as e:
        raise LOMError(f"cannot read reference scores from {path} ({e}) — is it a D4RL-format HDF5 file?") from None
    if not found:
        warnings.warn(
            f"{path} has no metadata/ref_min_score and metadata/ref_max_score: "
            "normalized scores will equal raw returns",
            stacklevel=3,
        )
        return RAW_RETURN_REFS
    if len(found) == 1 or found["ref_max_score"] == found["ref_min_score"]:
        raise LOMError(
            f"{path} needs both metadata/ref_min_score and metadata/ref_max_score, and they must differ (found {found})"
            " — fix or remove them"
        )
    return found["ref_min_score"], found["ref_max_score"]
