"""D4RL files are fetched into the d4rl cache, resumed when cut off, verified, and reused offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from d4rl_server import serve_directory, unreachable_base_url, write_tiny_d4rl_file

from lom.data import load_transitions, resolve_dataset
from lom.data.types import DatasetSpec
from lom.errors import LOMError

REPO = Path(__file__).resolve().parents[1]
NAME = "halfcheetah-medium-v2"
FILE = "halfcheetah_medium-v2.hdf5"


@pytest.fixture
def served(tmp_path):
    """A directory holding a tiny valid copy of FILE, and the bytes a download must reproduce."""
    directory = tmp_path / "server"
    path = write_tiny_d4rl_file(directory / FILE, n_episodes=6, seed=3)
    return directory, path.read_bytes()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("D4RL_DATASET_DIR", str(directory))
    return directory


def test_fresh_download_lands_in_the_cache_dir(served, cache, monkeypatch):
    directory, expected = served
    log = []
    with serve_directory(directory, request_log=log) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        transitions = load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected
    assert [p.name for p in cache.iterdir()] == [FILE], "no .part or .lock file is left in the cache"
    assert [entry["path"] for entry in log] == [f"/{FILE}"]
    assert len(transitions) > 0 and transitions.obs_dim == 17


def test_spec_url_is_used_without_a_mirror(served, cache, monkeypatch):
    directory, expected = served
    monkeypatch.delenv("LOM_DATASET_MIRROR", raising=False)
    with serve_directory(directory) as url:
        spec = DatasetSpec("mine", "d4rl", "HalfCheetah-v4", 0.0, 1.0, url=f"{url}/{FILE}", max_episode_steps=1000)
        load_transitions(spec, progress=False)
    assert (cache / FILE).read_bytes() == expected


def test_download_cut_off_half_way_resumes_with_a_range_request(served, cache, monkeypatch):
    directory, expected = served
    log = []
    with serve_directory(directory, cut_responses=1, request_log=log) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected
    assert [entry["status"] for entry in log] == [200, 206]
    assert log[1]["range"] == f"bytes={len(expected) // 2}-"


def test_part_file_left_by_an_interrupted_run_is_resumed(served, cache, monkeypatch):
    directory, expected = served
    cache.mkdir()
    (cache / f"{FILE}.part").write_bytes(expected[:1000])
    log = []
    with serve_directory(directory, request_log=log) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected
    assert [(entry["range"], entry["status"]) for entry in log] == [("bytes=1000-", 206)]


def test_server_ignoring_range_restarts_from_scratch(served, cache, monkeypatch):
    directory, expected = served
    cache.mkdir()
    (cache / f"{FILE}.part").write_bytes(b"x" * 1000)
    log = []
    with serve_directory(directory, honour_range=False, request_log=log) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected
    assert [entry["status"] for entry in log] == [200]


def test_corrupt_part_file_is_fetched_again_from_scratch(served, cache, monkeypatch):
    directory, expected = served
    cache.mkdir()
    (cache / f"{FILE}.part").write_bytes(b"x" * 1000)
    log = []
    with serve_directory(directory, request_log=log) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected
    assert [(entry["range"], entry["status"]) for entry in log] == [("bytes=1000-", 206), (None, 200)]


def test_second_load_uses_the_cache_with_the_server_stopped(served, cache, monkeypatch):
    directory, _ = served
    with serve_directory(directory) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        first = load_transitions(resolve_dataset(NAME), progress=False)
    second = load_transitions(resolve_dataset(NAME.upper()), progress=False)
    for key, value in first.as_dict().items():
        np.testing.assert_array_equal(value, getattr(second, key))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_cached_file_is_refused_and_fetched_again(served, cache, monkeypatch, damage):
    directory, expected = served
    cache.mkdir()
    (cache / FILE).write_bytes(expected[: len(expected) // 2] if damage == "truncated" else b"\0junk" * 500)
    with serve_directory(directory) as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        with pytest.warns(UserWarning, match="fetching it again"):
            load_transitions(resolve_dataset(NAME), progress=False)
    assert (cache / FILE).read_bytes() == expected


def test_damaged_cached_file_that_cannot_be_refetched_is_a_clear_error(served, cache, monkeypatch):
    _, expected = served
    cache.mkdir()
    (cache / FILE).write_bytes(expected[: len(expected) // 2])
    monkeypatch.setenv("LOM_DATASET_MIRROR", unreachable_base_url())
    with pytest.warns(UserWarning), pytest.raises(LOMError) as raised:
        load_transitions(resolve_dataset(NAME), progress=False)
    message = str(raised.value)
    assert str(cache / FILE) in message and "\n" not in message


def test_no_network_and_no_file_names_the_url_and_the_path(cache, monkeypatch):
    base = unreachable_base_url()
    monkeypatch.setenv("LOM_DATASET_MIRROR", base)
    with pytest.raises(LOMError) as raised:
        load_transitions(resolve_dataset(NAME), progress=False)
    message = str(raised.value)
    assert f"{base}/{FILE}" in message
    assert str(cache / FILE) in message
    assert "\n" not in message


def test_missing_file_on_the_server_is_a_clear_error(tmp_path, cache, monkeypatch):
    (tmp_path / "empty").mkdir()
    with serve_directory(tmp_path / "empty") as url:
        monkeypatch.setenv("LOM_DATASET_MIRROR", url)
        with pytest.raises(LOMError, match="404"):
            load_transitions(resolve_dataset(NAME), progress=False)
    assert not list(cache.iterdir()), "a failed download leaves no file, not even its lock"


def test_downloads_of_one_file_take_turns_and_leave_no_lock(served, cache, monkeypatch):
    """Processes started together (e.g. one per seed): one fetches, the others wait for it and use its file."""
    directory, expected = served
    log = []
    with serve_directory(directory, request_log=log) as url:
        env = {**os.environ, "LOM_DATASET_MIRROR": url, "D4RL_DATASET_DIR": str(cache), "PYTHONPATH": str(REPO)}
        program = f"from lom.data import resolve_dataset; from lom.data.download import ensure_dataset_file; " \
                  f"ensure_dataset_file(resolve_dataset({NAME!r}), progress=False)"
        procs = [subprocess.Popen([sys.executable, "-c", program], env=env) for _ in range(4)]
        assert [p.wait(timeout=120) for p in procs] == [0] * 4
    assert (cache / FILE).read_bytes() == expected
    assert [p.name for p in cache.iterdir()] == [FILE]
    assert [entry["path"] for entry in log] == [f"/{FILE}"], "the file is fetched once"
