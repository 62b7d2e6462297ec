"""Which part of LOM's actor update holds it back? From one LOM run's checkpoint (its frozen mixture, critic and
mode-value network), train fresh actors for a few thousand steps on different imitation targets and weights, and
score each; also score the policies the checkpoint implies without an actor.

Usage: python results/full_replay/probe_actor_targets.py RUN_DIR [--steps 5000] [--episodes 5] [--out CSV]
                                                            [--floor 0,0.05] [--variants 0,6]

Targets: the selected component's mean; a sample from it; a sample plus LOM's `ac_rand` noise, clipped to the
action box (what LOM imitates). Weights: 1, or LOM's clip(exp(β·(Q(s, a*) − V(s))), 0, C) for several β.
`--floor W1,W2` trains each fresh actor once per W, its k*(s) skipping components with mixture weight below W
(LOM's min_component_weight).

The checkpoints it reads, and the agent internals it calls, are those of commits up to 0b3ab6d (before every
network had a seed axis, lom/seeds.py): run it from a worktree of that commit
(`git worktree add ../lom-0b3ab6d 0b3ab6d`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lom.agents.lom import imitation_weight, supported_argmax  # noqa: E402
from lom.batches import DeviceDataset  # noqa: E402
from lom.data import load_transitions  # noqa: E402
from lom.evaluate import load_run  # noqa: E402
from lom.evaluation import evaluate  # noqa: E402
from lom.networks import sample_components  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_selection import train_fresh_actor  # noqa: E402

EVAL_SEED = 123
# (name, target, β): β None = unit weights.
VARIANTS = [
    ("mean, weight 1", "mean", None),
    ("sample, weight 1", "sample", None),
    ("sample + ac_rand, weight 1", "noisy", None),
    ("sample + ac_rand, β = 0.5", "noisy", 0.5),
    ("sample + ac_rand, β = 1", "noisy", 1.0),
    ("sample + ac_rand, β = 2", "noisy", 2.0),
    ("sample + ac_rand, run's β", "noisy", "run"),
    ("sample + ac_rand, β = 5", "noisy", 5.0),
    ("sample + ac_rand, β = 10", "noisy", 10.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=5000, help="actor updates per variant")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per policy")
    parser.add_argument("--out", help="also write the scores to this CSV file")
    parser.add_argument("--floor", default=None,
                        help="comma-separated min_component_weight values for the fresh actors' k*(s); each variant "
                             "is trained once per value (default: the run's)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated indices into the fresh-actor variants (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    run = load_run(args.run_dir)
    agent, cfg, hp = run.agent, run.config, run.agent.hp
    data = DeviceDataset(load_transitions(run.spec), run.normalizer, torch.device("cpu"),
                         run.record.get("reward_scale", 1.0))
    agent.finish_pretraining(data)
    floors = [hp.min_component_weight] if args.floor is None else [float(f) for f in args.floor.split(",")]
    variants = VARIANTS if args.variants is None else [VARIANTS[int(i)] for i in args.variants.split(",")]

    def score(policy) -> float:
        with torch.no_grad():
            result = evaluate(policy, run.normalizer, run.spec, args.episodes, seed=EVAL_SEED,
                              device=torch.device("cpu"))
        return result.summary["normalized_score"]

    def component_mean(rule: str, floor: float = 0.0):
        def act(obs: torch.Tensor) -> torch.Tensor:
            means, _, log_w = agent.gmm(obs)
            k = log_w.argmax(-1) if rule == "heaviest" else supported_argmax(agent.mode_value(obs), log_w, floor)
            return means[torch.arange(len(k)), k]
        return act

    rows = [("the run's actor", score(agent.act)),
            ("no actor: mean of k*(s)", score(component_mean("best"))),
            ("no actor: mean of k*(s), support floor 0.05", score(component_mean("best", 0.05))),
            ("no actor: mean of the heaviest component", score(component_mean("heaviest")))]
    for name, value in rows:
        print(f"{name:48s} {value:6.1f}", flush=True)

    def targets(batch, target: str, beta):
        means, stds, log_w = agent.behaviour(batch)
        k = agent.best_component(batch.obs, log_w)
        rows_ = torch.arange(len(k))
        mu, sd = means[rows_, k], stds[rows_, k]
        if target == "mean":
            a = mu
        else:
            a = sample_components(mu, sd, torch.randn_like(mu))
            if target == "noisy" and hp.ac_rand > 0:
                a = (a + hp.ac_rand * torch.randn_like(a)).clamp(-1.0, 1.0)
        if beta is None:
            return a, torch.ones(len(k))
        gap = agent.action_values(batch.obs, a.unsqueeze(1))[:, 0] - agent.critic.state_value(batch.obs)
        return a, imitation_weight(gap, hp.beta if beta == "run" else beta, hp.weight_clip)

    for (name, target, beta), floor in itertools.product(variants, floors):
        agent.hp = dataclasses.replace(hp, min_component_weight=floor)
        actor = train_fresh_actor(data, cfg, args.steps, lambda batch: targets(batch, target, beta))
        label = f"fresh actor, {args.steps} steps: {name}" + (f" ({hp.beta:g})" if beta == "run" else "")
        label += f", floor {agent.hp.min_component_weight:g}"
        rows.append((label, score(actor)))
        print(f"{label:48s} {rows[-1][1]:6.1f}", flush=True)

    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["policy", "normalized_score"])
            writer.writerows((name, f"{value:.1f}") for name, value in rows)


if __name__ == "__main__":
    main()
