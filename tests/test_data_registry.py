"""Dataset names resolve to the right D4RL file, evaluation env and reference scores; bad names get help."""

from __future__ import annotations

import numpy as np
import pytest
from d4rl_server import write_tiny_d4rl_file

from lom.data import D4RL_DATASETS, resolve_dataset
from lom.errors import LOMError

# D4RL's published reference returns (d4rl/infos.py), typed in independently of lom.data.registry.
REFERENCE = {
    "halfcheetah": ("HalfCheetah-v4", -280.178953, 12135.0),
    "hopper": ("Hopper-v4", -20.272305, 3234.3),
    "walker2d": ("Walker2d-v4", 1.629008, 4592.3),
}
KINDS = {
    "random": "random",
    "medium": "medium",
    "medium-replay": "medium_replay",
    "medium-expert": "medium_expert",
    "expert": "expert",
    "full-replay": "full_replay",
}
ALL_NAMES = [f"{env}-{kind}-v2" for env in REFERENCE for kind in KINDS]


def test_registry_holds_exactly_the_18_locomotion_datasets():
    assert sorted(D4RL_DATASETS) == sorted(ALL_NAMES)


@pytest.mark.parametrize("env", REFERENCE)
@pytest.mark.parametrize("kind", KINDS)
def test_each_dataset_has_url_env_and_normalized_score_formula(env, kind):
    env_id, ref_min, ref_max = REFERENCE[env]
    spec = resolve_dataset(f"{env}-{kind}-v2")
    assert spec.source == "d4rl"
    assert spec.url == f"http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/{env}_{KINDS[kind]}-v2.hdf5"
    assert spec.env_id == env_id
    assert spec.max_episode_steps == 1000
    returns = np.array([ref_min, ref_max, 1234.5, -50.0])
    np.testing.assert_allclose(spec.normalized_score(returns), 100 * (returns - ref_min) / (ref_max - ref_min))
    assert spec.normalized_score(ref_max) == pytest.approx(100.0)


def test_names_are_case_insensitive():
    assert resolve_dataset("HalfCheetah-full-replay-v2") == resolve_dataset("halfcheetah-full-replay-v2")
    assert resolve_dataset("  WALKER2D-Medium-v2 ").name == "walker2d-medium-v2"


@pytest.mark.parametrize(
    "typo, closest",
    [("halfcheetah-medum-v2", "halfcheetah-medium-v2"), ("Hoper-full-replay-v2", "hopper-full-replay-v2")],
)
def test_typo_is_refused_in_one_line_with_the_closest_names(typo, closest):
    with pytest.raises(LOMError) as raised:
        resolve_dataset(typo)
    message = str(raised.value)
    assert f"did you mean {closest}" in message
    assert "\n" not in message


def test_builtin_fork_resolves_from_the_env_module():
    from lom.fork import dataset as fork_dataset

    spec = resolve_dataset("Multimodal-Fork-v0")
    assert (spec.name, spec.source, spec.env_id) == (fork_dataset.DATASET_NAME, "builtin", fork_dataset.ENV_ID)
    assert (spec.ref_min_score, spec.ref_max_score) == (fork_dataset.REF_MIN_SCORE, fork_dataset.REF_MAX_SCORE)
    assert spec.max_episode_steps == fork_dataset.MAX_EPISODE_STEPS


def test_file_with_d4rl_name_keeps_env_and_reference_scores(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "mine.hdf5")
    spec = resolve_dataset("hopper-medium-v2", dataset_path=str(path))
    assert (spec.source, spec.path, spec.env_id) == ("file", str(path), "Hopper-v4")
    assert (spec.ref_min_score, spec.ref_max_score) == (-20.272305, 3234.3)


def test_file_with_gymnasium_env_reads_reference_scores_from_metadata(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "cheetah.hdf5", metadata={"ref_min_score": -10.0, "ref_max_score": 90.0})
    spec = resolve_dataset("halfcheetah-v4", dataset_path=str(path))
    assert (spec.source, spec.env_id, spec.max_episode_steps) == ("file", "HalfCheetah-v4", 1000)
    assert spec.normalized_score(40.0) == pytest.approx(50.0)


def test_file_without_reference_scores_reports_raw_returns_with_a_warning(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "plain.hdf5")
    with pytest.warns(UserWarning, match="raw returns"):
        spec = resolve_dataset("Hopper-v4", dataset_path=str(path))
    assert spec.normalized_score(123.0) == pytest.approx(123.0)


def test_file_with_only_one_reference_score_is_refused(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "half.hdf5", metadata={"ref_min_score": 1.0})
    with pytest.raises(LOMError, match="ref_max_score"):
        resolve_dataset("Hopper-v4", dataset_path=str(path))


def test_missing_dataset_file_is_refused(tmp_path):
    with pytest.raises(LOMError, match="does not exist"):
        resolve_dataset("hopper-medium-v2", dataset_path=str(tmp_path / "absent.hdf5"))


def test_unknown_env_with_a_file_suggests_env_ids(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "x.hdf5")
    with pytest.raises(LOMError, match="HalfCheetah-v4") as raised:
        resolve_dataset("HalfCheetah-v44", dataset_path=str(path))
    assert "\n" not in str(raised.value)


def test_minari_name_with_a_file_is_refused(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "x.hdf5")
    with pytest.raises(LOMError, match="Minari"):
        resolve_dataset("minari:mujoco/hopper/medium-v0", dataset_path=str(path))
