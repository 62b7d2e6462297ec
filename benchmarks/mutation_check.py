"""Mutation check: one-line changes that each make an algorithm wrong, applied one at a time to a copy of the
repository; the tests must fail on every one of them.

    python benchmarks/mutation_check.py                  # every mutation; prints which test caught each
    python benchmarks/mutation_check.py iql-neg-beta ... # only these
    python benchmarks/mutation_check.py --list           # the mutations and why each one is wrong
    python benchmarks/mutation_check.py select-argmin ... --tests tests/test_known_answers.py
                                                         # what these tests catch on their own

The copy holds the working tree's files (tracked and untracked, not ignored ones). It first runs every test named
below unchanged (they must pass); then for each mutation the tests named with it, fastest first, stopping at the
first failure. Exits non-zero if a mutation survives. About 8 minutes on 2 busy CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BY_HAND = "tests/test_updates_by_hand.py"
KNOWN = "tests/test_known_answers.py"
NUMBERS = "tests/test_numbers.py"
RESUME = "tests/test_resume_agents.py"
CAPTURE = "tests/test_cuda_path_on_cpu.py"
ALGORITHM = (BY_HAND, KNOWN)
WEIGHT_RULES = ("tests/test_weight_rules.py", BY_HAND)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    before: str  # occurs exactly once in `path`
    after: str
    why: str
    tests: tuple[str, ...] = ALGORITHM


CRITICS, IQL, TD3BC = "lom/agents/critics.py", "lom/agents/iql.py", "lom/agents/td3bc.py"
LOM, BC, NETWORKS = "lom/agents/lom.py", "lom/agents/bc.py", "lom/networks.py"
WEIGHTS = "lom/agents/weights.py"
LOSS_WINDOW, CAPTURED_STEPS = "lom/training/loss_window.py", "lom/training/captured_steps.py"

MUTATIONS = [
    # -- the expectile critic (IQL's, and LOM's default) --
    Mutation("expectile-lower", CRITICS, "torch.where(diff < 0, 1.0 - expectile, expectile)",
             "torch.where(diff > 0, 1.0 - expectile, expectile)",
             "V fits the lower expectile 1 − τ of Q instead of the upper one"),
    Mutation("expectile-v-minus-q", CRITICS, "expectile_loss(q_target - self.state_value(batch.obs)",
             "expectile_loss(self.state_value(batch.obs) - q_target", "the residual taken as V − Q: the same error"),
    Mutation("expectile-v-of-s", CRITICS, "(1.0 - batch.done) * self.state_value(batch.next_obs)",
             "(1.0 - batch.done) * self.state_value(batch.obs)", "Q bootstraps from V(s) instead of V(s')"),
    Mutation("expectile-no-done", CRITICS, "self.discount * (1.0 - batch.done) * self.state_value",
             "self.discount * self.state_value", "bootstraps past terminal states"),
    Mutation("expectile-online-q", CRITICS, "q_target = self.value(batch.obs, batch.act)",
             "q_target = self.q(batch.obs, batch.act).min(dim=0).values",
             "V fits the online Q instead of the target network"),
    Mutation("expectile-no-polyak", CRITICS,
             'polyak_update(self.q_target, self.q, self.tau)\n        return {"critic/v', 'return {"critic/v',
             "the expectile critic's target network never follows"),
    Mutation("ensemble-max", CRITICS, "return self.q_target(obs, act).min(dim=1).values",
             "return self.q_target(obs, act).max(dim=1).values",
             "the critic's value is the most optimistic member instead of the minimum"),
    Mutation("action-values-online", CRITICS, "return self.q_target.over_actions(",
             "return self.q.over_actions(", "LOM scores modes and weights with the online critic, not the target"),
    # -- the sarsa critic (the authors') --
    Mutation("sarsa-current-action", CRITICS, "next_act = (batch.next_act + noise)", "next_act = (batch.act + noise)",
             "bootstraps from the current action instead of the dataset's next action"),
    Mutation("sarsa-noise-unclipped", CRITICS, ".clamp(-SMOOTH_NOISE_CLIP, SMOOTH_NOISE_CLIP)", "",
             "target smoothing noise not clipped at ±0.5"),
    Mutation("sarsa-no-done", CRITICS, "(1.0 - batch.done) * self.value(batch.next_obs, next_act)",
             "self.value(batch.next_obs, next_act)", "bootstraps past terminal states"),
    Mutation("sarsa-targets-every-step", CRITICS, "if self.updates % self.target_every == 0:", "if True:",
             "targets follow every update instead of every 2nd"),
    Mutation("polyak-rate", NETWORKS, "list(online.parameters()), tau)", "list(online.parameters()), 1.0 - tau)",
             "every target network moves by 1 − τ instead of τ"),
    # -- IQL --
    Mutation("iql-neg-beta", IQL, "torch.exp(self.hp.beta * advantage)", "torch.exp(-self.hp.beta * advantage)",
             "weights actions by exp(−β·A): the worst ones most"),
    Mutation("iql-advantage-next-state", IQL, "- self.critic.state_value(batch.obs)",
             "- self.critic.state_value(batch.next_obs)", "the advantage is taken against V(s')"),
    Mutation("iql-weight-unclipped", IQL, ".clamp(max=self.hp.weight_clip)", "",
             "advantage weights not clipped at 100"),
    Mutation("iql-no-schedule", IQL, '        self.actor_lr.advance()\n', "",
             "the actor's learning rate never follows its cosine decay"),
    # -- TD3+BC --
    Mutation("td3bc-noise-unclipped", TD3BC, ".clamp(-hp.noise_clip, hp.noise_clip)", "",
             "target policy noise not clipped", (BY_HAND,)),
    Mutation("td3bc-online-actor", TD3BC, "(self.actor_target(batch.next_obs) + noise)",
             "(self.actor(batch.next_obs) + noise)", "the next action comes from the online actor", (BY_HAND,)),
    Mutation("td3bc-online-q", TD3BC, "next_q = self.q_target(batch.next_obs, next_act)",
             "next_q = self.q(batch.next_obs, next_act)", "the TD target uses the online critic", (BY_HAND,)),
    Mutation("td3bc-twin-mean", TD3BC, "next_act).min(dim=1).values", "next_act).mean(dim=1)",
             "the TD target averages the twin critics instead of taking their minimum", (BY_HAND,)),
    Mutation("td3bc-no-done", TD3BC, "self.discount * (1.0 - batch.done) * next_q", "self.discount * next_q",
             "bootstraps past terminal states", (BY_HAND,)),
    Mutation("td3bc-lambda-raw", TD3BC, "lam = self.hp.alpha / q.abs().mean(dim=1).detach()", "lam = self.hp.alpha",
             "λ = α without the normalisation by mean |Q|", (BY_HAND,)),
    Mutation("td3bc-lambda-gradient", TD3BC, "q.abs().mean(dim=1).detach()", "q.abs().mean(dim=1)",
             "gradient flows through λ's normaliser", (BY_HAND,)),
    Mutation("td3bc-minimises-q", TD3BC, "loss = -lam * q.mean(dim=1)", "loss = lam * q.mean(dim=1)",
             "the actor minimises Q", (BY_HAND,)),
    Mutation("td3bc-no-delay", TD3BC, "if self.updates % self.hp.policy_delay == 0:", "if True:",
             "actor and targets updated every step instead of every 2nd", (BY_HAND,)),
    # -- BC --
    Mutation("bc-minimises-likelihood", BC, "nll = -seed_mean(self.actor.log_prob(", "nll = seed_mean(self.actor.log_prob(",
             "BC pushes the data's actions away"),
    Mutation("bc-next-action", BC, "log_prob(batch.obs, batch.act)", "log_prob(batch.obs, batch.next_act)",
             "BC imitates the next row's action"),
    # -- LOM: the behaviour mixture --
    Mutation("gmm-ignores-weights", NETWORKS, "torch.logsumexp(log_weights + component_log_probs.sum(-1)",
             "torch.logsumexp(component_log_probs.sum(-1)", "the mixture's weights are never learnt"),
    Mutation("gmm-std-normaliser", NETWORKS, "(2 * var) - stds.log()", "(2 * var) + stds.log()",
             "the Gaussian's normaliser has the wrong sign: components widen without end"),
    # -- LOM: component selection, the mode value, the actor --
    Mutation("select-argmin", LOM, "return values.argmax(dim=-1)", "return values.argmin(dim=-1)",
             "k* is the component with the LOWEST mode value"),
    Mutation("select-heaviest", LOM, "supported_argmax(self.mode_value(obs), log_weights",
             "supported_argmax(log_weights, log_weights", "k* is the heaviest component (cloning the main mode)"),
    Mutation("select-no-floor", LOM, "values = values.masked_fill(~supported, -torch.inf)", "values = values",
             "components under the support floor still compete for k*"),
    Mutation("a-star-component-0", LOM, "means.gather(2, pick).squeeze(2), stds.gather(2, pick).squeeze(2)",
             "means[:, :, 0], stds[:, :, 0]",
             "a* is drawn from component 0 whatever k* is"),
    Mutation("mode-value-at-means", LOM, "sample_components(means, stds, self.rng.normal_like(means))", "means",
             "Q_mode(s, k) regressed on Q(s, μ_k) instead of Q at actions drawn from component k"),
    Mutation("lom-weight-neg-beta", WEIGHTS, "return torch.exp(beta * gap)", "return torch.exp(-beta * gap)",
             "imitation weight exp(−β·gap): the worst actions weigh most"),
    Mutation("lom-weight-unclipped", WEIGHTS, "torch.exp(beta * gap).clamp(max=clip)", "torch.exp(beta * gap)",
             "imitation weight not clipped at C"),
    # -- the scale-free imitation weights (--weight_rule rms | ess) --
    Mutation("rms-unnormalised", WEIGHTS, "torch.exp(self.beta * gap / scale)", "torch.exp(self.beta * gap)",
             "the rms rule exponentiates the raw gap: the reward scale sets the weights again", WEIGHT_RULES),
    Mutation("rms-mean-of-gaps", WEIGHTS, "self.mean_square.lerp_(gap.square().mean(dim=-1)",
             "self.mean_square.lerp_(gap.mean(dim=-1)", "c² a running mean of the gaps instead of their squares",
             WEIGHT_RULES),
    Mutation("rms-shared-across-seeds", WEIGHTS, "self.mean_square.lerp_(gap.square().mean(dim=-1)",
             "self.mean_square.lerp_(gap.square().mean()", "one running RMS pooled over all stacked seeds",
             WEIGHT_RULES),
    Mutation("rms-no-warm-start", WEIGHTS, "rate = self.batches.reciprocal().clamp(min=self.min_rate)",
             "rate = torch.full_like(self.batches, self.min_rate)",
             "the running mean starts from 0 at rate 1/H: c is far too small for the first H batches", WEIGHT_RULES),
    Mutation("rms-state-not-saved", WEIGHTS, 'self.register_buffer("mean_square", torch.zeros(seeds))',
             'self.register_buffer("mean_square", torch.zeros(seeds), persistent=False)',
             "the running mean of g² is not in checkpoints: a resumed run restarts it from 0",
             ("tests/test_weight_rules.py", RESUME)),
    Mutation("ess-inverted", WEIGHTS, "torch.softmax(u * z, dim=-1)", "torch.softmax(-u * z, dim=-1)",
             "the ess rule weighs the worst gaps most", WEIGHT_RULES),
    Mutation("ess-bisection-reversed", WEIGHTS,
             "lo, hi = torch.where(too_even, mid, lo), torch.where(too_even, hi, mid)",
             "lo, hi = torch.where(too_even, lo, mid), torch.where(too_even, mid, hi)",
             "the bisection moves away from the ESS target", WEIGHT_RULES),
    Mutation("ess-unstandardised", WEIGHTS, "z = (gap - mean) / std.clamp(min=TINY)", "z = gap - mean",
             "the temperature is searched on raw gaps: it depends on the reward scale", WEIGHT_RULES),
    Mutation("ess-sums-to-one", WEIGHTS, "(gap.shape[-1] * torch.softmax(u * z, dim=-1))",
             "torch.softmax(u * z, dim=-1)", "the ess weights sum to 1 instead of averaging 1: steps n times smaller",
             WEIGHT_RULES),
    Mutation("lom-policy-gap-swapped", LOM, "return q[..., 0] - q[..., 1]", "return q[..., 1] - q[..., 0]",
             "the authors' gap taken as Q(s, π(s)) − Q(s, a*)"),
    Mutation("lom-value-baseline-missing", LOM, "[..., 0] - self.critic.state_value(obs)", "[..., 0]",
             "the weight exp(β·Q(s, a*)) without the baseline V(s)"),
    Mutation("lom-imitates-dataset-action", LOM, "(pi - a_star).square()", "(pi - batch.act).square()",
             "the actor imitates the dataset's actions, not the best mode's"),
    # -- evaluation and scores --
    Mutation("score-no-min", "lom/data/types.py", "dtype=np.float64) - self.ref_min_score)", "dtype=np.float64))",
             "the score does not subtract the reference minimum", (NUMBERS,)),
    Mutation("score-divides-by-max", "lom/data/types.py", "self.ref_max_score - self.ref_min_score\n",
             "self.ref_max_score\n", "the score divides by the maximum, not the range", (NUMBERS,)),
    Mutation("eval-counts-reset-episodes", "lom/training/evaluation.py", "returns += np.where(running, reward, 0.0)",
             "returns += reward", "vectorised returns include the episodes auto-reset envs start", (NUMBERS,)),
    Mutation("eval-same-start", "lom/training/evaluation.py", "episode_seeds = [seed + i for",
             "episode_seeds = [seed + 0 for", "every episode of a seed starts from the first episode's state",
             (NUMBERS,)),
    # -- what is logged --
    Mutation("loss-window-shared-count", LOSS_WINDOW, "reported.sum(0).tolist()", "[len(rows)] * len(self.names)",
             "a loss reported every other step (TD3+BC's actor) is averaged over every step: half its mean",
             ("tests/test_cuda_graphs.py",)),
    # -- stacked seeds --
    Mutation("seed-mean-across-seeds", "lom/seeds.py", "return x.flatten(1).mean(dim=1)",
             "return x.mean().expand(len(x))", "every seed's loss is the mean over all seeds' batches",
             ("tests/test_stacked_seeds.py",)),
    Mutation("seed-slice-offset", "lom/seeds.py", "return tree[index:index + 1].clone()",
             "return tree[:1].clone()", "every seed's checkpoint holds seed 0's networks",
             ("tests/test_stacked_seeds.py",)),
    # -- resume --
    Mutation("resume-counter-lost", "lom/agents/base.py", 'return {"updates": self.updates}',
             'return {"updates": 0}', "TD3+BC's and the sarsa critic's update counters restart on resume", (RESUME,)),
    Mutation("resume-schedule-lost", "lom/agents/base.py", 'group["lr"] = now["lr"]', "pass",
             "IQL's cosine schedule stops at the value it had when the run was resumed", (RESUME,)),
    Mutation("resume-optimizers-lost", "lom/agents/base.py", 'opt.load_state_dict(saved)',
             "pass", "Adam's moments restart on resume (the mixture's too, mid-way through pre-training)", (RESUME,)),
    # -- captured steps (run on the CPU by tests/cuda_emulator.py) --
    Mutation("capture-generators-unregistered", CAPTURED_STEPS, "for generator in self.agent.rng.generators or ():",
             "for generator in ():", "replays repeat the seeds' random draws of capture instead of drawing anew",
             (CAPTURE,)),
    Mutation("capture-counters-not-rewound", CAPTURED_STEPS, "                counter.updates = updates",
             "                pass", "after capture, TD3+BC's policy delay and the sarsa target period are off by a "
             "period", (CAPTURE,)),
    Mutation("capture-replay-counters-frozen", CAPTURED_STEPS, "            counter.updates += 1", "            pass",
             "replays no longer advance the update counters, so checkpoints record the wrong phase", (CAPTURE,)),
    Mutation("capture-warmup-too-short", CAPTURED_STEPS, "self.warmup_left = max(warmup, math.lcm(1, *periods) + 1)",
             "self.warmup_left = 1", "capture before TD3+BC's actor optimiser has stepped: Adam's lazily made state "
             "is made again by every replay",
             (CAPTURE,)),
    Mutation("capture-host-read", IQL, "        losses.update(self.update_actor(actor_batch))",
             "        losses.update(self.update_actor(actor_batch)) if losses[\"critic/q_loss\"].isfinite().all() else None",
             "a host read inside a captured update (on a GPU: capture fails)", (CAPTURE,)),
]


def copy_repository(into: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[str | None, float]:
    """The first failing test's id (None if all pass) and the seconds it took."""
    # No bytecode: a mutation of the same size written within the same second as the original would otherwise
    # leave a stale .pyc behind that Python takes for the restored file.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *tests],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if out.returncode == 0:
        return None, seconds
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", out.stdout, re.MULTILINE)
    return (failed.group(1) if failed else f"pytest exit status {out.returncode}"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--tests", nargs="+", help="run these tests on every mutation instead of its own")
    args = parser.parse_args()
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations: {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    if args.tests:
        chosen = [dataclasses.replace(m, tests=tuple(args.tests)) for m in chosen]
    if args.list:
        for m in chosen:
            print(f"{m.name:30} {m.path:22} {m.why}")
        return 0

    with tempfile.TemporaryDirectory(prefix="lom-mutations-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        failed, seconds = run_tests(copy, every_test)
        if failed:
            print(f"the tests fail without any mutation ({failed}); fix them first", file=sys.stderr)
            return 2
        print(f"unmutated: {' '.join(every_test)} pass ({seconds:.0f} s)", flush=True)
        rows = []
        for m in chosen:
            target = copy / m.path
            original = target.read_text()
            assert original.count(m.before) == 1, f"{m.name}: its pattern no longer matches {m.path} once"
            target.write_text(original.replace(m.before, m.after))
            try:
                caught_by, seconds = run_tests(copy, m.tests)
            finally:
                target.write_text(original)
            rows.append((m, caught_by, seconds))
            print(f"{m.name}: {caught_by or 'SURVIVED'} ({seconds:.0f} s)", flush=True)

    width = max(len(m.name) for m in chosen)
    print(f"\n| {'mutation':{width}} | file | caught by | s |\n|{'-' * (width + 2)}|---|---|---|")
    for m, caught_by, seconds in rows:
        print(f"| {m.name:{width}} | {m.path} | {caught_by or '**SURVIVED**'} | {seconds:.0f} |")
    survivors = [m.name for m, caught_by, _ in rows if caught_by is None]
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} mutations caught"
          + (f"; survived: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
