"""Does LOM pick the wrong component, or is the mixture too coarse? From one LOM run's checkpoint (its frozen
critic), score policies that follow the component chosen by different rules, and fresh actors trained for a few
thousand steps on samples of it (unit weights); optionally after training the run's mixture for more steps.

Usage: python results/full_replay/probe_selection.py RUN_DIR [--rules net,mc8,qmean,heaviest] [--steps 5000]
                                                      [--episodes 10] [--more_mixture_steps 0] [--out CSV]
                                                      [--data_betas 0.1,3] [--new_mixture_components N]
                                                      [--targets sample,best8,awr3]

Rules for k*(s): `net` the run's mode-value network (LOM's rule); `mcM` the critic's mean value of M samples of each
component (the quantity the network regresses on, without its error); `maxM` the best of M samples' values and
`upM` their 0.9-quantile (a component scored by its good actions, not its average one); `qmean` the critic's value
of each component's mean action; `heaviest` the component with the largest mixture weight (no values at all).
A value rule followed by `@W` (e.g. `mc8@0.05`) skips components with mixture weight below W, as LOM's
`min_component_weight` does (`net` uses the run's own).

`--targets` says what the fresh actor of each rule imitates: `sample` a sample of k*(s) with unit weight (LOM's
target); `bestM` the best of M samples of k*(s) by the critic, unit weight; `awrB` the dataset's actions weighted
by clip(exp(B·(Q(s, a) − V(s))), 0, 100) times the posterior probability that k*(s) produced them; `own` a sample
of k*(s) with the run's own imitation weight clip(exp(β·(Q(s, a*) − b(s))), 0, C) — its β, C and baseline b
(V(s), or Q(s, π(s)) of the fresh actor itself) — i.e. the run's actor loss on its final, frozen critic; `ownB` the
same with β = B.
`--more_mixture_steps N` first trains the run's mixture N more steps (as in pre-training, batch 512) and reports
its negative log-likelihood on every dataset row before and after; `net` is then unavailable (the network scored
the old components). `--new_mixture_components N` replaces the run's mixture by a new one with N components,
trained from scratch for `--more_mixture_steps` steps.

`--data_betas B1,B2` adds fresh actors trained on the dataset's own actions instead of component samples, for each
β: `awr` weights every action by clip(exp(β·(Q(s, a) − V(s))), 0, 100) (IQL's actor, deterministic); `awr-k*`
multiplies that by the posterior probability that k*(s) (LOM's rule) produced the action, i.e. it imitates only
the data of the selected mode.

The checkpoints it reads, and the agent internals it calls, are those of commits up to 0b3ab6d (before every
network had a seed axis, lom/seeds.py): run it from a worktree of that commit
(`git worktree add ../lom-0b3ab6d 0b3ab6d`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lom.agents.lom import imitation_weight, supported_argmax  # noqa: E402
from lom.batches import DeviceDataset  # noqa: E402
from lom.data import load_transitions  # noqa: E402
from lom.evaluate import load_run  # noqa: E402
from lom.evaluation import evaluate  # noqa: E402
from lom.networks import DeterministicActor, GaussianMixture, adam, gmm_log_prob, sample_components  # noqa: E402

EVAL_SEED = 123
ROWS_PER_CHUNK = 20_000
AWR_CLIP = 100.0  # IQL's clip of its advantage weights
TARGET_KIND = re.compile(r"sample|best\d+|awr\d*\.?\d+|own(\d*\.?\d+)?")  # the --targets kinds
SELECT_ROWS = 2_000  # dataset rows per chunk when k*(s) is computed for every row (M samples of N components each)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--rules", default="net,mc8,qmean,heaviest")
    parser.add_argument("--steps", type=int, default=5000, help="actor updates per rule")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy")
    parser.add_argument("--more_mixture_steps", type=int, default=0)
    parser.add_argument("--new_mixture_components", type=int, default=0)
    parser.add_argument("--data_betas", default="", help="β values for the fresh actors on dataset actions")
    parser.add_argument("--targets", default="sample",
                        help="what each rule's fresh actors imitate: sample,bestM,awrB,own,ownB")
    parser.add_argument("--out", help="also write the scores to this CSV file")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if not TARGET_KIND.fullmatch(t)]
    if unknown:
        parser.error(f"unknown --targets {', '.join(unknown)}: use sample, bestM, awrB, own or ownB (e.g. best8,own1)")
    torch.set_num_threads(1)
    torch.manual_seed(0)

    run = load_run(args.run_dir)
    agent, cfg = run.agent, run.config
    data = DeviceDataset(load_transitions(run.spec), run.normalizer, torch.device("cpu"),
                         run.record.get("reward_scale", 1.0))
    rules = [r for r in args.rules.split(",") if r]
    if args.more_mixture_steps:
        if "net" in rules:
            parser.error("--more_mixture_steps changes the components the mode-value network scored: drop `net`")
        if args.new_mixture_components:
            agent.gmm = GaussianMixture(data.obs_dim, data.act_dim, args.new_mixture_components,
                                        (cfg.gmm_hidden_width,) * 2)
            agent.hp = dataclasses.replace(agent.hp, num_components=args.new_mixture_components)
        else:
            print(f"mixture NLL per row: {mixture_nll(agent.gmm, data):.3f} after the run's {cfg.gmm_steps} steps",
                  flush=True)
        train_mixture(agent.gmm, data, args.more_mixture_steps, cfg.gmm_batch_size, cfg.gmm_lr)
        print(f"mixture NLL per row: {mixture_nll(agent.gmm, data):.3f} after {args.more_mixture_steps} more",
              flush=True)
    agent.finish_pretraining(data)

    def score(policy) -> float:
        with torch.no_grad():
            result = evaluate(policy, run.normalizer, run.spec, args.episodes, seed=EVAL_SEED,
                              device=torch.device("cpu"))
        return result.summary["normalized_score"]

    @torch.no_grad()
    def select(obs, means, stds, log_w, rule: str) -> torch.Tensor:
        if rule == "net":
            return agent.best_component(obs, log_w)
        if rule == "heaviest":
            return log_w.argmax(-1)
        rule, _, floor = rule.partition("@")
        return supported_argmax(component_values(obs, means, stds, rule), log_w, float(floor or 0))

    @torch.no_grad()
    def component_values(obs, means, stds, rule: str) -> torch.Tensor:
        if rule == "qmean":
            return agent.action_values(obs, means)
        for prefix, reduce in (("mc", lambda q: q.mean(-1)), ("max", lambda q: q.max(-1).values),
                               ("up", lambda q: q.quantile(0.9, dim=-1))):
            if rule.startswith(prefix) and rule[len(prefix):].isdigit():
                m = int(rule[len(prefix):])
                b, n, a = means.shape
                draws = sample_components(means.unsqueeze(2).expand(b, n, m, a),
                                          stds.unsqueeze(2).expand(b, n, m, a), torch.randn(b, n, m, a))
                return reduce(agent.action_values(obs, draws.reshape(b, n * m, a)).view(b, n, m))
        raise SystemExit(f"unknown rule {rule!r}: use net, mcM, maxM, upM (e.g. mc8), qmean or heaviest")

    rows = []
    for rule in rules:
        def follow(obs: torch.Tensor, rule: str = rule) -> torch.Tensor:
            means, stds, log_w = agent.gmm(obs)
            k = select(obs, means, stds, log_w, rule)
            return means[torch.arange(len(k)), k]

        no_actor = score(follow)

        # The critic and the mixture are frozen, so k*(s) of every dataset row is computed once per rule.
        chunks = zip(torch.split(data.obs, SELECT_ROWS), torch.split(agent.behaviour_cache, SELECT_ROWS),
                     torch.split(agent.log_weight_cache, SELECT_ROWS))
        k_rows = torch.cat([select(obs, *cache.unbind(1), log_w, rule) for obs, cache, log_w in chunks])
        for target_kind in targets:
            def rule_target(batch, pi, rule: str = rule, target_kind: str = target_kind, k_rows=k_rows):
                means, stds, log_w = agent.behaviour(batch)
                k = k_rows[batch.idx]
                rows_ = torch.arange(len(k))
                if target_kind.startswith("awr"):
                    weight = awr_weight(agent, batch, float(target_kind[3:]))
                    return batch.act, weight * posterior(means, stds, log_w, batch.act, k)
                m = int(target_kind[4:]) if target_kind.startswith("best") else 1
                draws = sample_components(means[rows_, k].unsqueeze(1).expand(-1, m, -1),
                                          stds[rows_, k].unsqueeze(1).expand(-1, m, -1),
                                          torch.randn(len(k), m, means.shape[-1]))
                best = agent.action_values(batch.obs, draws).argmax(-1) if m > 1 else torch.zeros_like(k)
                a_star = draws[rows_, best]
                if target_kind.startswith("own"):
                    beta = float(target_kind[3:] or agent.hp.beta)
                    return a_star, imitation_weight(agent.weight_gap(batch.obs, a_star, pi), beta, agent.hp.weight_clip)
                return a_star, torch.ones(len(k))

            actor = train_fresh_actor(data, cfg, args.steps, rule_target)
            name = rule if target_kind == "sample" else f"{rule} {target_kind}"
            rows.append((name, no_actor, score(actor)))
            print(f"{name:14s} following its component's mean {no_actor:6.1f}   fresh actor, {args.steps} steps "
                  f"{rows[-1][2]:6.1f}", flush=True)

    for beta in [float(b) for b in args.data_betas.split(",") if b]:
        for mode_only in (False, True):
            def weighted_data_action(batch, pi, beta: float = beta, mode_only: bool = mode_only):
                weight = awr_weight(agent, batch, beta)
                return batch.act, (weight * posterior_of_selected(agent, batch) if mode_only else weight)

            actor = train_fresh_actor(data, cfg, args.steps, weighted_data_action)
            name = f"{'awr-k*' if mode_only else 'awr'} β={beta:g}"
            rows.append((name, float("nan"), score(actor)))
            print(f"{name:10s} fresh actor on dataset actions, {args.steps} steps {rows[-1][2]:6.1f}", flush=True)

    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["rule", "more_mixture_steps", "follow_component_mean", "fresh_actor"])
            writer.writerows((r, args.more_mixture_steps, f"{a:.1f}", f"{b:.1f}") for r, a, b in rows)


def train_fresh_actor(data: DeviceDataset, cfg, steps: int, targets) -> DeterministicActor:
    """A new actor (seed 0) trained `steps` steps on E[ω · mean_a (π(s) − a)²], (a, ω) = targets(batch, π(s)),
    π(s) detached."""
    torch.manual_seed(0)
    actor = DeterministicActor(data.obs_dim, data.act_dim, cfg.hidden)
    optimizer = adam(actor.parameters(), cfg.actor_lr)
    for _ in range(steps):
        batch = data.sample(cfg.actor_batch_size)
        pi = actor(batch.obs)
        with torch.no_grad():
            target, weight = targets(batch, pi.detach())
        loss = (weight * (pi - target).square().mean(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return actor


@torch.no_grad()
def awr_weight(agent, batch, beta: float) -> torch.Tensor:
    """IQL's weight of each dataset action: clip(exp(β·(Q(s, a) − V(s))), 0, AWR_CLIP)."""
    advantage = agent.action_values(batch.obs, batch.act.unsqueeze(1))[:, 0] - agent.critic.state_value(batch.obs)
    return torch.exp(beta * advantage).clamp(max=AWR_CLIP)


@torch.no_grad()
def posterior_of_selected(agent, batch) -> torch.Tensor:
    """P(component k*(s) | s, a) for the batch's dataset actions under the frozen mixture."""
    means, stds, log_w = agent.behaviour(batch)
    return posterior(means, stds, log_w, batch.act, agent.best_component(batch.obs, log_w))


def posterior(means, stds, log_w, act, k) -> torch.Tensor:
    """P(component k | s, a) under the frozen mixture, per row."""
    joint = torch.distributions.Normal(means, stds).log_prob(act.unsqueeze(1)).sum(-1) + log_w
    return joint.softmax(-1)[torch.arange(len(k)), k]


@torch.no_grad()
def mixture_nll(gmm, data: DeviceDataset) -> float:
    total = sum(-gmm_log_prob(*gmm(obs), act).sum().item()
                for obs, act in zip(torch.split(data.obs, ROWS_PER_CHUNK), torch.split(data.act, ROWS_PER_CHUNK)))
    return total / len(data)


def train_mixture(gmm, data: DeviceDataset, steps: int, batch_size: int, lr: float) -> None:
    gmm.requires_grad_(True)
    optimizer = adam(gmm.parameters(), lr, "foreach")
    for _ in range(steps):
        idx = data.draw(batch_size)
        loss = -gmm_log_prob(*gmm(data.obs.index_select(0, idx)), data.act.index_select(0, idx)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    gmm.requires_grad_(False)


if __name__ == "__main__":
    main()
