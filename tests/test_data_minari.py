"""`minari:<id>` datasets resolve to their recorded env and load as the same kind of transitions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import gymnasium
import numpy as np
import pytest
from d4rl_server import unreachable_base_url
from hf_hub_server import serve_hf_datasets, write_minari_remote

from lom.data import load_transitions, resolve_dataset
from lom.data.minari_source import episodes_to_d4rl_arrays
from lom.errors import LOMError

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = "lomtest/pendulum/tiny-v0"
# (steps, terminated): Pendulum's actions lie in [-2, 2], so loading must rescale them to [-1, 1].
EPISODES = [(4, True), (5, False), (3, True)]


def episode(steps: int, terminated: bool, first: int) -> SimpleNamespace:
    """Observation i is [i, 0, 0]; action i is 2 * i / 100 (Pendulum units)."""
    ids = np.arange(first, first + steps + 1, dtype=np.float32)
    return SimpleNamespace(
        observations=np.stack([ids, np.zeros_like(ids), np.zeros_like(ids)], axis=1),
        actions=(2 * ids[:-1, None] / 100).astype(np.float32),
        rewards=-ids[:-1].astype(np.float64),
        terminations=np.arange(steps) == steps - 1 if terminated else np.zeros(steps, bool),
        truncations=np.zeros(steps, bool) if terminated else np.arange(steps) == steps - 1,
    )


def hand_written_episodes() -> list[SimpleNamespace]:
    starts = np.cumsum([0] + [steps + 1 for steps, _ in EPISODES])[:-1]
    return [episode(steps, terminated, first) for (steps, terminated), first in zip(EPISODES, starts, strict=True)]


def test_episodes_become_d4rl_rows_with_unit_actions():
    arrays = episodes_to_d4rl_arrays(hand_written_episodes(), gymnasium.spaces.Box(-2, 2, (1,)), "test")
    assert len(arrays["rewards"]) == sum(steps for steps, _ in EPISODES)
    np.testing.assert_allclose(arrays["actions"][:, 0] * 100, arrays["observations"][:, 0], atol=1e-4)
    np.testing.assert_array_equal(arrays["next_observations"][:, 0], arrays["observations"][:, 0] + 1)
    assert arrays["terminals"].nonzero()[0].tolist() == [3, 11]
    assert arrays["timeouts"].nonzero()[0].tolist() == [8]  # the truncated episode's last step


def test_unbounded_or_discrete_actions_are_refused():
    with pytest.raises(LOMError, match="unbounded"):
        episodes_to_d4rl_arrays(hand_written_episodes(), gymnasium.spaces.Box(-np.inf, np.inf, (1,)), "test")
    with pytest.raises(LOMError, match="Box"):
        episodes_to_d4rl_arrays(hand_written_episodes(), gymnasium.spaces.Discrete(3), "test")


@pytest.fixture
def local_store(tmp_path, monkeypatch):
    """A Minari store holding DATASET_ID, built from hand-written episodes (no network, no jax)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    store_hand_written(DATASET_ID)
    return tmp_path / "minari"


def store_hand_written(dataset_id: str = DATASET_ID) -> None:
    """`dataset_id`, made of the hand-written episodes, in the Minari store that MINARI_DATASETS_PATH names."""
    import minari  # in requirements.txt: these tests run in CI, they are not skipped
    from minari.data_collector.episode_buffer import EpisodeBuffer

    buffers = [
        EpisodeBuffer(
            id=i,
            observations=e.observations,
            actions=e.actions,
            rewards=list(e.rewards),
            terminations=list(e.terminations),
            truncations=list(e.truncations),
            infos={},
        )
        for i, e in enumerate(hand_written_episodes())
    ]
    with pytest.warns(UserWarning):  # minari warns about the metadata this test leaves out
        minari.create_dataset_from_buffers(
            dataset_id, buffers, env="Pendulum-v1", ref_min_score=-100.0, ref_max_score=0.0
        )


@pytest.mark.parametrize("dataset_id, standard_name, env, kind", [
    ("mujoco/hopper/medium-v0", "hopper-medium-v2", "hopper", "medium"),
    ("mujoco/halfcheetah/expert-v0", "halfcheetah-expert-v2", "halfcheetah", "expert"),
    ("mujoco/ant/medium-v0", None, "ant", "medium"),  # no D4RL dataset, so no standard name: its kind only
    ("mujoco/walker2d/simple-v0", None, "walker2d", "simple"),
])
def test_minari_mujoco_ids_are_standard_ids_of_d4rls_rows(dataset_id, standard_name, env, kind, tmp_path,
                                                           monkeypatch):
    """mujoco/<env>/<kind>-v<n> is D4RL's <env>-<kind>-v2 (where D4RL has it) under both presets; other Minari ids
    (and files) have no standard name."""
    from lom.config import PAPER_HYPERPARAMS, PAPER_KIND_ROWS, TrainConfig, preset_for

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    store_hand_written(dataset_id)
    spec = resolve_dataset(f"minari:{dataset_id}")
    assert (spec.standard_name, spec.env_family, spec.kind) == (standard_name, env, kind)
    facts = (spec.table_name, 1, spec.env_family, spec.kind)
    paper, ours = (preset_for(preset, *facts) for preset in ("paper", "lom"))
    if standard_name:
        row = PAPER_HYPERPARAMS[standard_name]
        assert paper.row == ours.row == standard_name and paper.values.num_components == row.num_components
        assert TrainConfig().resolve(*facts).num_critics == row.num_critics and ours.values.beta == 0.1
    elif kind in PAPER_KIND_ROWS:
        assert paper.row == f"{kind} (kind rule)" and ours.row.startswith("LOM_DEFAULT")
    else:
        assert paper.row == "PAPER_DEFAULT" and ours.row.startswith("LOM_DEFAULT")
    assert spec.name == f"minari:{dataset_id}"  # runs are still filed under the Minari id


def test_minari_dataset_resolves_to_its_recorded_env_and_scores(local_store):
    spec = resolve_dataset(f"minari:{DATASET_ID}")
    assert (spec.name, spec.source, spec.env_id, spec.max_episode_steps) == (
        f"minari:{DATASET_ID}",
        "minari",
        "Pendulum-v1",
        200,
    )
    assert spec.normalized_score(-50.0) == pytest.approx(50.0)


def test_minari_dataset_loads_without_crossing_episodes(local_store):
    transitions = load_transitions(resolve_dataset(f"minari:{DATASET_ID}"), progress=False)
    # All steps but the truncated episode's last one (its next action does not exist).
    assert len(transitions) == sum(steps for steps, _ in EPISODES) - 1
    assert transitions.terminals.sum() == 2
    done = transitions.terminals == 1
    np.testing.assert_array_equal(transitions.next_observations[:, 0], transitions.observations[:, 0] + 1)
    np.testing.assert_array_equal(transitions.next_actions[done], transitions.actions[done])
    np.testing.assert_allclose(transitions.next_actions[~done, 0], transitions.actions[~done, 0] + 0.01, atol=1e-5)


def test_unknown_minari_dataset_is_a_clear_error(local_store):
    with pytest.raises(LOMError, match="cannot load Minari dataset") as raised:
        resolve_dataset("minari:lomtest/pendulum/absent-v0")
    assert "\n" not in str(raised.value)


# Run in a fresh Python, because huggingface_hub reads HF_ENDPOINT when it is imported: each id's spec and rows.
DOWNLOAD = """
import json, sys
from lom.data import load_transitions, resolve_dataset
from lom.errors import LOMError
found = {}
for name in sys.argv[1:]:
    try:
        spec = resolve_dataset(name)
        found[name] = [spec.env_id, spec.ref_min_score, spec.ref_max_score, len(load_transitions(spec, progress=False))]
    except LOMError as e:
        found[name] = str(e)
print(json.dumps(found))
"""


def test_a_minari_dataset_missing_here_is_downloaded_through_minaris_hub_remote(tmp_path, monkeypatch):
    """What `--env_name minari:<id>` does on a fresh machine, with the requirements installed: Minari finds the id
    in its remote (hf://, the Hugging Face Hub, served here by tests/hf_hub_server.py), downloads it into the local
    store, and the next use needs no server."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "remote_store"))
    store_hand_written()
    write_minari_remote(tmp_path / "remote_store", DATASET_ID, tmp_path / "hub")
    store = tmp_path / "minari"
    log: list[str] = []

    def download(*names: str, endpoint: str) -> dict:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "MINARI_REMOTE": "hf://lomtest-hub",
               "HF_HOME": str(tmp_path / "hf"), "MINARI_DATASETS_PATH": str(store), "PYTHONPATH": str(REPO),
               "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", DOWNLOAD, *names], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    absent = "minari:lomtest/pendulum/absent-v0"
    with serve_hf_datasets(tmp_path / "hub", "lomtest-hub", request_log=log) as url:
        found = download(f"minari:{DATASET_ID}", absent, endpoint=url)
    rows = sum(steps for steps, _ in EPISODES) - 1
    assert found[f"minari:{DATASET_ID}"] == ["Pendulum-v1", -100.0, 0.0, rows]
    assert "cannot load Minari dataset 'lomtest/pendulum/absent-v0'" in found[absent] and "\n" not in found[absent]
    assert any(line.startswith("GET ") and line.endswith("/tiny-v0/data/main_data.hdf5") for line in log), log
    for name in ("main_data.hdf5", "metadata.json"):
        downloaded = store / DATASET_ID / "data" / name
        assert downloaded.read_bytes() == (tmp_path / "remote_store" / DATASET_ID / "data" / name).read_bytes()

    # The server is gone (no network): the downloaded copy is used.
    assert download(f"minari:{DATASET_ID}", endpoint=unreachable_base_url()) == {
        f"minari:{DATASET_ID}": ["Pendulum-v1", -100.0, 0.0, rows]}


def test_missing_minari_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail
    with pytest.raises(LOMError, match=re.escape('pip install "minari[hf]>=0.5"')):
        resolve_dataset("minari:mujoco/hopper/medium-v0")


def test_minari_dataset_is_evaluated_in_its_recorded_env(local_store):
    from lom.envs import make_vector_env

    envs = make_vector_env(resolve_dataset(f"minari:{DATASET_ID}"), num_envs=2, seed=0)
    try:
        assert envs.single_action_space.low.tolist() == [-1.0] and envs.single_action_space.high.tolist() == [1.0]
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 3)  # Pendulum-v1, as the dataset recorded it
        envs.step(np.ones((2, 1), dtype=np.float32))
    finally:
        envs.close()


def test_train_py_trains_and_evaluates_on_a_minari_dataset(tmp_path, monkeypatch):
    """The advertised path end to end: random Pendulum-v1 episodes go into a local Minari store through Minari's
    own create_dataset_from_buffers (its DataCollector would need jax), and `train.py --env_name minari:<id>`
    trains LOM on them and evaluates in the env the dataset records."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    recorded = gymnasium.make("Pendulum-v1", max_episode_steps=50)
    recorded.action_space.seed(0)
    buffers = []
    for i in range(4):
        observations, actions, rewards, terminations, truncations = [recorded.reset(seed=i)[0]], [], [], [], []
        while not (terminations and (terminations[-1] or truncations[-1])):
            actions.append(recorded.action_space.sample())
            obs, reward, terminated, truncated, _ = recorded.step(actions[-1])
            observations.append(obs)
            rewards.append(float(reward))
            terminations.append(terminated)
            truncations.append(truncated)
        buffers.append(EpisodeBuffer(id=i, observations=np.stack(observations), actions=np.stack(actions),
                                     rewards=rewards, terminations=terminations, truncations=truncations, infos={}))
    with pytest.warns(UserWarning):  # minari warns about the metadata this test leaves out
        minari.create_dataset_from_buffers("lomtest/pendulum/recorded-v0", buffers, env=recorded,
                                           ref_min_score=-1500.0, ref_max_score=0.0)
    recorded.close()

    flags = ["--env_name", "minari:lomtest/pendulum/recorded-v0", "--training_steps", "20", "--gmm_steps", "20",
             "--eval_every", "20", "--eval_episodes", "2", "--log_every", "10", "--log_path", str(tmp_path / "runs"),
             "--gmm_batch_size", "32", "--critic_batch_size", "32", "--mode_batch_size", "32",
             "--actor_batch_size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "train.py", *flags], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    run_dir = Path(re.search(r"results in (.*)/results.json", out.stdout).group(1))
    results = json.loads((run_dir / "results.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert results["steps"] == 20 and np.isfinite(results["final_return"])
    assert config["env_name"] == "minari:lomtest/pendulum/recorded-v0"
