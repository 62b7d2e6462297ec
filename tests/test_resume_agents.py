"""Resume for every agent and phase (test_train.py covers LOM's training phase and the stop signals): a run
killed with SIGKILL and resumed from its last checkpoint ends with the numbers of an uninterrupted one, bit for
bit; and a resume with a flag that changes the numbers is refused."""

from __future__ import annotations

import dataclasses
import json
import signal

import pytest
import torch
from test_train import SMALL, TINY, env, metrics_without_time, run_dir_of, start_and_interrupt, train  # noqa: F401

from lom.config import TrainConfig
from lom.errors import LOMError
from lom.run_folder import CHECKPOINT
from lom.training import checkpoint
from lom.training.resume import load_current

# An odd checkpoint interval: a run resumed from step 55 is mid-way through TD3+BC's policy delay and the sarsa
# critic's target interval, so a counter restored wrongly changes which steps update the actor or the targets.
CHECKPOINT_EVERY = 55
RUN = ["--training_steps", "200", "--gmm_steps", "400", "--eval_every", "20", "--eval_episodes", "3",
       "--log_every", "10", "--seed", "4", "--hidden_width", "32", "--gmm_hidden_width", "32", *SMALL]


def pretraining_checkpointed(run_dir) -> bool:
    return (run_dir / CHECKPOINT).is_file()


def training_checkpointed(run_dir) -> bool:
    """Evaluated at step 60, just past the first training checkpoint (55) and long before the next (110)."""
    metrics = run_dir / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().splitlines()) >= 1 + 3


def uninterrupted_and_resumed(args, env, tmp_path, ready):
    """The run folders of `args` trained in one go, and killed once `ready`, then resumed."""
    whole = [*args, "--log_path", str(tmp_path / "whole")]
    done = train(whole, env)
    assert done.returncode == 0, done.stderr
    cut = [*args, "--checkpoint_every", str(CHECKPOINT_EVERY), "--log_path", str(tmp_path / "cut")]
    cut_dir = run_dir_of(cut, env)
    stopped = start_and_interrupt(cut, env, cut_dir, signal.SIGKILL, ready=ready)
    assert stopped.returncode == -signal.SIGKILL, stopped.stderr
    progress = checkpoint.load(cut_dir / CHECKPOINT)["progress"]
    resumed = train([*cut, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    return run_dir_of(whole, env), cut_dir, progress, resumed.stdout


def assert_same_numbers(whole, cut):
    assert metrics_without_time(whole) == metrics_without_time(cut)  # every evaluation and loss, to the bit
    a, b = (json.loads((d / "results.json").read_text()) for d in (whole, cut))
    for key in ("final_normalized_score", "best_normalized_score", "final_return", "steps"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("agent_flags", [
    ["--agent", "BC"],
    ["--agent", "IQL"],  # the actor's cosine learning-rate schedule
    ["--agent", "TD3BC"],  # the update counter behind the policy delay
    ["--agent", "LOM", "--critic", "sarsa", "--weight_baseline", "policy"],  # the sarsa critic's target counter
    ["--agent", "LOM", "--weight_rule", "rms"],  # the running mean of squared gaps and its batch count
    ["--agent", "LOM", "--actor_lr_schedule", "cosine"],  # where the actor's learning rate has got to
], ids=["BC", "IQL", "TD3BC", "LOM-sarsa", "LOM-rms", "LOM-cosine"])
def test_agent_killed_in_training_resumes_to_the_numbers_of_an_uninterrupted_run(agent_flags, env, tmp_path):
    whole, cut, progress, stdout = uninterrupted_and_resumed([*RUN, *agent_flags], env, tmp_path,
                                                               training_checkpointed)
    assert (progress["phase"], progress["step"]) == ("train", CHECKPOINT_EVERY)
    assert f"resumed from train step {CHECKPOINT_EVERY}\n" in stdout
    assert_same_numbers(whole, cut)


def test_lom_killed_during_mixture_pretraining_resumes_to_the_same_mixture_and_numbers(env, tmp_path):
    whole, cut, progress, stdout = uninterrupted_and_resumed([*RUN, "--agent", "LOM"], env, tmp_path,
                                                               pretraining_checkpointed)
    assert progress["phase"] == "pretrain" and 0 < progress["step"] < 400
    assert f"resumed from pretrain step {progress['step']}\n" in stdout
    mixtures = [torch.load(d / "gmm.pt")["gmm"] for d in (whole, cut)]
    assert mixtures[0].keys() == mixtures[1].keys()
    assert all(torch.equal(mixtures[0][k], mixtures[1][k]) for k in mixtures[0])
    assert_same_numbers(whole, cut)


def test_optimiser_state_saved_by_a_captured_run_resumes_with_this_runs_kernels():
    """A checkpoint from a captured GPU run (capturable, foreach Adam) loads into an eager CPU agent: the saved
    moments come back, the kernel flags stay this run's (capturable Adam cannot step on a CPU)."""
    from lom.agents import make_agent
    from lom.config import TrainConfig

    cfg = TrainConfig(agent="TD3BC").resolve("my_data", 3)
    agent = make_agent(cfg, 5, 3)
    for opt in agent.optimizers.values():
        for p in (p for group in opt.param_groups for p in group["params"]):
            p.grad = torch.ones_like(p)
        opt.step()
    state = agent.training_state()
    for saved in state["optimizers"].values():
        for group in saved["param_groups"]:
            group.update(capturable=True, foreach=True)
    fresh = make_agent(cfg, 5, 3)
    fresh.load_training_state(state)
    for key, opt in fresh.optimizers.items():
        assert all(not g["capturable"] and not g["foreach"] for g in opt.param_groups)
        moments = [s["exp_avg"] for s in opt.state.values()]
        assert moments and all(torch.equal(m, torch.full_like(m, 0.1)) for m in moments), key
        opt.step()  # an eager CPU step with the loaded state


def test_resume_with_a_flag_that_changes_the_numbers_is_refused_naming_it(env, tmp_path):
    args = [*TINY, "--agent", "IQL", "--log_path", str(tmp_path)]
    assert train(args, env).returncode == 0
    run_dir = run_dir_of(args, env)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    refused = train([*args, "--resume", "--tau", "0.01"], env)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0] and "other values of tau;" in lines[0], refused.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_baseline_resumes_whatever_lom_values_the_config_now_resolves_to(env, tmp_path):
    """A baseline's config records LOM's values too (e.g. N, which the one rule may resolve differently later),
    but its numbers do not use them: a resume is not refused over them, while LOM's is."""
    for agent, refused in (("TD3BC", False), ("LOM", True)):
        args = [*TINY, "--agent", agent, "--log_path", str(tmp_path / agent)]
        assert train(args, env).returncode == 0
        out = train([*args, "--resume", "--num_components", "7"], env)
        assert (out.returncode == 2 and "other values of num_components" in out.stderr) == refused, out.stderr



def test_a_checkpoint_written_by_older_code_is_refused_in_one_line(env, tmp_path):
    """Another layout, a setting the checkpoint does not record (one added since), or every GPU's RNG state: each is
    refused by the one compatibility check, for --resume as for the tools that load a run."""
    args = [*TINY, "--agent", "IQL", "--log_path", str(tmp_path)]
    assert train(args, env).returncode == 0
    path = run_dir_of(args, env) / CHECKPOINT
    current = checkpoint.load(path)
    record = json.loads((path.parent / "config.json").read_text())
    cfg = TrainConfig(**{f.name: record[f.name] for f in dataclasses.fields(TrainConfig)})
    assert load_current(path, cfg)["layout"] == checkpoint.LAYOUT
    older = [{**current, "layout": 1},
             {**current, "config": {k: v for k, v in current["config"].items() if k != "tau"}},
             {**current, "rng": {**current["rng"], "cuda": [torch.zeros(8, dtype=torch.uint8)]}}]
    for state in older:
        checkpoint.save(path, state)
        with pytest.raises(LOMError, match="written by an older version of this code: use that version"):
            load_current(path, cfg)
    refused = train([*args, "--resume"], env)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "older version" in lines[0], refused.stderr
