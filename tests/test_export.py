"""lom.export: every agent's policy as a TorchScript and an ONNX file that act like lom.evaluate's policy, loaded the
way a user loads them; the loading examples of docs/export.md run in a Python that cannot import lom."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from d4rl_server import write_tiny_d4rl_file

from lom.agents import REGISTRY
from lom.config import TrainConfig
from lom.data import load_transitions
from lom.data.types import DatasetSpec
from lom.envs import action_bounds, make_env
from lom.evaluate import load_run
from lom.export import FORMATS, ExportedPolicy, export, read_back
from lom.networks import GMM_MEAN_LIMIT, DeterministicActor
from lom.run_folder import CHECKPOINT
from lom.training import checkpoint
from lom.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
TINY = dict(training_steps=40, gmm_steps=20, eval_every=40, eval_episodes=2, log_every=10, gmm_batch_size=64,
            critic_batch_size=64, mode_batch_size=64, actor_batch_size=64, device="cpu")
STATES = 1000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A fresh tiny fork run of every agent."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOM_CACHE_DIR", str(root / "cache"))
        yield {agent: Path(train(TrainConfig(agent=agent, log_path=str(root / "runs"), **TINY))["run_dir"])
               for agent in tuple(REGISTRY)}


def dataset_states(run_dir: Path) -> np.ndarray:
    observations = load_transitions(load_run(run_dir).spec, progress=False).observations
    return observations[np.random.default_rng(0).choice(len(observations), STATES, replace=False)]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("agent", tuple(REGISTRY))
def test_the_file_acts_like_the_evaluated_policy_on_dataset_states(runs, agent, fmt, tmp_path):
    exported = export(runs[agent], fmt, tmp_path / f"policy{FORMATS[fmt]}")
    states = dataset_states(runs[agent])
    run = load_run(runs[agent])
    with torch.no_grad():
        evaluated = run.agent.act_single(run.normalizer(torch.as_tensor(states))).numpy()
    from_file = read_back(exported.path, fmt)(states.astype(np.float32))
    assert from_file.shape == evaluated.shape == (STATES, 2)
    assert np.abs(from_file - evaluated).max() <= 1e-5
    assert exported.max_difference <= 1e-5


@pytest.mark.parametrize("agent", tuple(REGISTRY))
def test_onnx_runtime_actions_never_leave_the_action_box(runs, agent, tmp_path):
    """ONNX Runtime's tanh can round past 1 (1.0000001 on one of 1,000 states of a default run): the file clamps."""
    exported = export(runs[agent], "onnx", tmp_path / "policy.onnx")
    run = load_run(runs[agent])
    mean, std = run.normalizer.mean.numpy(), run.normalizer.std.numpy()
    rng = np.random.default_rng(0)
    # Dataset-like states, then states far outside the data, where every output saturates tanh.
    states = np.concatenate([mean + std * scale * rng.standard_normal((20_000, len(mean)))
                             for scale in (1, 10, 1e3, 1e6)]).astype(np.float32)
    actions = read_back(exported.path, "onnx")(states)
    assert np.isfinite(actions).all()
    assert actions.min() >= -1.0 and actions.max() <= 1.0, (actions.min(), actions.max())
    # The large states reach the ends of the box (MDN's: its mixture's means stop at GMM_MEAN_LIMIT).
    assert np.abs(actions).max() == (GMM_MEAN_LIMIT if agent == "MDN" else 1.0)


def test_actions_are_mapped_onto_the_envs_own_bounds_like_evaluation_does():
    spec = DatasetSpec(name="pendulum", source="file", env_id="Pendulum-v1", ref_min_score=0.0, ref_max_score=1.0)
    env = make_env(spec)  # Pendulum's torque lies in [-2, 2]; evaluation acts in [-1, 1] through a rescaling wrapper
    actor = DeterministicActor(3, 1)
    policy = ExportedPolicy(torch.nn.Identity(), actor, *action_bounds(spec))
    states = 100 * torch.randn(50, 3)  # large enough to reach the ends of [-1, 1]
    with torch.no_grad():
        unit, exported = actor(states).numpy(), policy(states).numpy()
    np.testing.assert_allclose(exported, np.stack([env.action(a) for a in unit]), atol=1e-6)
    assert np.abs(exported).max() > 1.5, "actions near ±1 must map near ±2"
    assert exported.min() >= -2.0 and exported.max() <= 2.0


def test_a_folder_without_a_trained_policy_is_refused_in_one_line(runs, tmp_path):
    pretraining = tmp_path / "pretraining"
    pretraining.mkdir()
    (pretraining / "config.json").write_text((runs["LOM"] / "config.json").read_text())
    state = checkpoint.load(runs["LOM"] / CHECKPOINT)
    state["progress"].update(phase="pretrain", step=10)
    checkpoint.save(pretraining / CHECKPOINT, state)
    for folder, expected in ((tmp_path, "not a run folder"), (pretraining, "no trained policy yet")):
        out = subprocess.run([sys.executable, "-m", "lom.export", str(folder), "--format", "onnx"], cwd=REPO,
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not list(pretraining.glob("policy*"))


def docs_examples() -> dict[str, str]:
    """The python blocks of docs/export.md that load an exported file, by the file they load."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "export.md").read_text(), flags=re.S)
    return {name: block for block in blocks for name in ("policy.pt", "policy.onnx") if f'"{name}"' in block}


def test_the_docs_examples_load_the_files_without_lom(tmp_path):
    examples = docs_examples()
    assert set(examples) == {"policy.pt", "policy.onnx"}
    assert all(len(code.strip().splitlines()) <= 5 for code in examples.values())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOM_CACHE_DIR": str(tmp_path / "cache")}
    data = write_tiny_d4rl_file(tmp_path / "cheetah.hdf5", obs_dim=17, act_dim=6,
                                metadata={"ref_min_score": 0.0, "ref_max_score": 100.0})
    flags = ["--env_name", "HalfCheetah-v4", "--dataset_path", str(data), "--agent", "BC", "--training_steps", "20",
             "--eval_every", "20", "--eval_episodes", "1", "--log_path", str(tmp_path / "runs")]
    trained = subprocess.run([sys.executable, "train.py", *flags], cwd=REPO, env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    run_dir = Path(re.search(r"results in (.*)/results.json", trained.stdout).group(1))

    user = tmp_path / "elsewhere"
    user.mkdir()
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    for name, fmt in (("policy.pt", "torchscript"), ("policy.onnx", "onnx")):
        exported = subprocess.run([sys.executable, "-m", "lom.export", str(run_dir), "--format", fmt, "--out",
                                   str(user / name)], cwd=REPO, env=env, capture_output=True, text=True)
        assert exported.returncode == 0, exported.stderr
        assert f"wrote {user / name}" in exported.stdout
        (user / f"{name}.py").write_text(examples[name])
        ran = subprocess.run([sys.executable, f"{name}.py"], cwd=user, env=clean, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
    no_lom = subprocess.run([sys.executable, "-c", "import lom"], cwd=user, env=clean, capture_output=True)
    assert no_lom.returncode != 0, "the examples must run where lom cannot be imported"
