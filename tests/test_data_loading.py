"""Transitions pair each step with its own episode's next state and action; bad files are refused by name."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from d4rl_server import tiny_d4rl_arrays, write_tiny_d4rl_file

from lom.data import load_transitions, resolve_dataset
from lom.data.transitions import build_transitions
from lom.errors import LOMError
from lom.io import write_d4rl_hdf5

# Hand-written rows. Observation = [episode, step]; action = [10 * episode + step]. Episodes:
#   0: steps 0-2, terminates at step 2
#   1: steps 0-3, cut by the time limit at step 3 (timeouts)
#   2: steps 0-1, ends with no flag at all (only next_observations shows the boundary)
#   3: steps 0-2, the file ends mid-episode
EPISODES = [(0, 3, "terminal"), (1, 4, "timeout"), (2, 2, "unflagged"), (3, 3, "file end")]


def hand_written_rows(with_next_observations: bool = True) -> dict[str, np.ndarray]:
    rows = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")}
    for episode, length, ending in EPISODES:
        for step in range(length):
            last = step == length - 1
            rows["observations"].append([episode, step])
            rows["next_observations"].append([episode, step + 1])
            rows["actions"].append([(10 * episode + step) / 100])
            rows["rewards"].append(float(10 * episode + step))
            rows["terminals"].append(last and ending == "terminal")
            rows["timeouts"].append(last and ending == "timeout")
    arrays = {
        key: np.asarray(value, dtype=bool if key in ("terminals", "timeouts") else np.float32)
        for key, value in rows.items()
    }
    if not with_next_observations:
        del arrays["next_observations"]
    return arrays


def as_ids(transitions) -> list[tuple]:
    """(episode, step, next episode, next step, next action id, done) per transition."""
    return [
        (int(s[0]), int(s[1]), int(n[0]), int(n[1]), round(float(a[0]) * 100), bool(d))
        for s, n, a, d in zip(
            transitions.observations,
            transitions.next_observations,
            transitions.next_actions,
            transitions.terminals,
            strict=True,
        )
    ]


def test_transitions_never_cross_episode_boundaries():
    got = as_ids(build_transitions(hand_written_rows(), 1000, "test"))
    assert got == [
        (0, 0, 0, 1, 1, False),
        (0, 1, 0, 2, 2, False),
        (0, 2, 0, 3, 2, True),  # terminal: s' from next_observations, a' = own action (masked by done)
        (1, 0, 1, 1, 11, False),
        (1, 1, 1, 2, 12, False),
        (1, 2, 1, 3, 13, False),  # (1, 3) timed out: dropped
        (2, 0, 2, 1, 21, False),  # (2, 1) is an unflagged boundary: dropped
        (3, 0, 3, 1, 31, False),
        (3, 1, 3, 2, 32, False),  # (3, 2) is the last row and not terminal: dropped
    ]


def test_without_next_observations_terminal_rows_still_keep_their_own_action():
    got = as_ids(build_transitions(hand_written_rows(with_next_observations=False), 1000, "test"))
    terminal = [row for row in got if row[5]]
    assert terminal == [(0, 2, 1, 0, 2, True)]  # s' is the next row (masked by done); a' is its own action
    assert (1, 3) not in [row[:2] for row in got]


def test_rewards_and_actions_stay_with_their_rows():
    transitions = build_transitions(hand_written_rows(), 1000, "test")
    np.testing.assert_array_equal(
        transitions.rewards, 10 * transitions.observations[:, 0] + transitions.observations[:, 1]
    )
    np.testing.assert_allclose(transitions.actions[:, 0] * 100, transitions.rewards, atol=1e-4)
    assert all(value.dtype == np.float32 for value in transitions.as_dict().values())


def test_missing_timeouts_fall_back_to_the_episode_length():
    n = 10
    arrays = {
        "observations": np.arange(n, dtype=np.float32)[:, None],
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.zeros(n, np.float32),
        "terminals": np.zeros(n, bool),
    }
    arrays["terminals"][1] = True  # episodes: rows 0-1 (terminal), 2-5 (cut at 4 steps), 6-9 (cut at 4 steps)
    kept = build_transitions(arrays, 4, "test").observations[:, 0].astype(int).tolist()
    assert kept == [0, 1, 2, 3, 4, 6, 7, 8]


def test_tiny_file_loads_through_a_file_spec(tmp_path):
    path = write_tiny_d4rl_file(tmp_path / "tiny.hdf5", n_episodes=4, obs_dim=5, act_dim=2, max_episode_steps=20)
    raw = tiny_d4rl_arrays(n_episodes=4, obs_dim=5, act_dim=2, max_episode_steps=20)
    transitions = load_transitions(resolve_dataset("hopper-medium-v2", dataset_path=str(path)), progress=False)
    # Every row is kept except the two timed-out episodes' last rows.
    assert len(transitions) == len(raw["rewards"]) - 2
    assert transitions.terminals.sum() == 2
    assert (transitions.obs_dim, transitions.act_dim) == (5, 2)


def test_builtin_dataset_loads_the_fork_file(tmp_path, monkeypatch):
    from lom.fork import dataset as fork_dataset

    path = write_tiny_d4rl_file(tmp_path / "fork.hdf5", obs_dim=3, act_dim=2)
    monkeypatch.setattr(fork_dataset, "fork_dataset_path", lambda seed=0: path)
    transitions = load_transitions(resolve_dataset("multimodal-fork-v0"), progress=False)
    assert (transitions.obs_dim, transitions.act_dim) == (3, 2)


def write_variant(tmp_path, change) -> str:
    arrays = tiny_d4rl_arrays(obs_dim=4, act_dim=2)
    change(arrays)
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return str(path)


def set_item(key, index, value):
    def change(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][index] = value

    return change


@pytest.mark.parametrize(
    "change, key, phrase",
    [
        (set_item("observations", (3, 1), np.nan), "observations", "NaN"),
        (set_item("rewards", 5, np.inf), "rewards", "NaN or inf"),
        (set_item("next_observations", (0, 0), np.nan), "next_observations", "NaN"),
        (lambda a: a.update(rewards=a["rewards"][:, None]), "rewards", "1-D"),
        (lambda a: a.update(observations=a["observations"].ravel()), "observations", "2-D"),
        (lambda a: a.update(actions=a["actions"][:-1]), "actions", "rows"),
        (lambda a: a.pop("actions"), "actions", "missing"),
        (lambda a: a.pop("terminals"), "terminals", "missing"),
        (set_item("actions", (2, 0), 1.5), "actions", "[-1, 1]"),
        (lambda a: a.update(timeouts=a["timeouts"].astype(np.float32) * 0.5), "timeouts", "booleans"),
    ],
)
def test_bad_files_are_refused_naming_file_and_key(tmp_path, change, key, phrase):
    path = write_variant(tmp_path, change)
    with pytest.raises(LOMError) as raised:
        load_transitions(resolve_dataset("hopper-medium-v2", dataset_path=path), progress=False)
    message = str(raised.value)
    assert path in message and f"'{key}'" in message and phrase in message
    assert "\n" not in message


def test_actions_a_hair_outside_the_range_are_clipped(tmp_path):
    path = write_variant(tmp_path, set_item("actions", (0, 0), 1.00001))
    transitions = load_transitions(resolve_dataset("hopper-medium-v2", dataset_path=path), progress=False)
    assert transitions.actions.max() <= 1.0


def test_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "fake.hdf5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(LOMError, match="not a readable HDF5"):
        load_transitions(resolve_dataset("hopper-medium-v2", dataset_path=str(path)), progress=False)


def test_written_metadata_does_not_disturb_loading(tmp_path):
    arrays = tiny_d4rl_arrays(obs_dim=3, act_dim=1)
    write_d4rl_hdf5(tmp_path / "m.hdf5", arrays, {"ref_min_score": 0.0, "ref_max_score": 1.0})
    transitions = load_transitions(resolve_dataset("Hopper-v4", dataset_path=str(tmp_path / "m.hdf5")), progress=False)
    assert len(transitions) == len(arrays["rewards"]) - 2
