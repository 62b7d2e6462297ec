"""Command-line parsing shared by the entry points: flags come from the TrainConfig dataclass itself."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import NoReturn

from lom.config import PAPER_SCHEDULE, SCHEDULES, TrainConfig
from lom.errors import LOMError, run_cli  # noqa: F401  (run_cli: the entry points' wrapper, imported from here)


def per_dataset(field: str) -> str:
    """"(default: X; <dataset>: Y)" for a schedule field, read from the one table in lom.config."""
    default = getattr(PAPER_SCHEDULE, field)
    exceptions = "".join(f"; {name}: {getattr(schedule, field):,}" for name, schedule in SCHEDULES.items()
                         if getattr(schedule, field) != default)
    return f"(default: {getattr(PAPER_SCHEDULE, field):,}{exceptions})"


FLAG_HELP = {
    "env_name": "dataset to train on: a D4RL name (e.g. halfcheetah-medium-replay-v2, any case), multimodal-fork-v0 "
                "(built in, the default), minari:<dataset id>, or with --dataset_path a gymnasium env id",
    "dataset_path": "train on this D4RL-format HDF5 file instead of downloading (--env_name names its env)",
    "agent": "LOM, or a baseline: BC, IQL, TD3BC",
    "preset": "LOM's method and default values: lom (ours: expectile critic, weight against V(s), rewards scaled by "
              "the return range, β 0.1, support floor 0.05; one rule for every dataset) or paper (the authors' "
              "released agent: sarsa critic, weight against Q(s, π(s)), unscaled rewards, no floor, the paper's row "
              "for the dataset, or for the env and kind a file records in metadata/; config.json's preset_row "
              "names it); LOM-paper run folders hold the latter; every flag below still overrides",
    "seed": "random seed; a CPU run with the same seed and number of threads is repeatable bit for bit",
    "training_steps": f"main training steps {per_dataset('training_steps')}",
    "gmm_steps": f"LOM: behaviour-mixture pre-training steps {per_dataset('gmm_steps')}",
    "gmm_path": "LOM: load a trained behaviour mixture (a run's gmm.pt) instead of pre-training",
    "eval_every": f"evaluate every this many training steps {per_dataset('eval_every')}",
    "eval_episodes": "episodes per evaluation, run in parallel",
    "checkpoint_every": "write checkpoint.pt every this many steps (and always at the end)",
    "log_every": "read losses back from the device (and check them for NaN) every this many steps",
    "critic": "LOM's critic: expectile (IQL-style) or sarsa (the authors' ensemble with next actions) "
              "(default: from --preset)",
    "mode_net": "LOM's mode-value network: multihead (one output per component) or onehot (the authors' form)",
    "weight_baseline": "LOM's imitation weight exp(β·(Q(s, a*) − b(s))) compares with b = value: the expectile "
                       "critic's V(s), or policy: Q(s, π(s)) (the authors' rule) (default: from --preset)",
    "weight_rule": "how LOM's imitation weight ω is made from the gap g = Q(s, a*) − b(s), each rule capped at C: "
                   "fixed: exp(β·g) (the paper's; β in units of 1/reward), rms: exp(rms_beta · g / c), c² a running "
                   "mean of g² (MARWIL's normalisation), or ess: n·softmax(λ·g) over the batch, λ set so the weights' "
                   "effective sample size is ess_fraction of the batch; rms and ess do not change when rewards are "
                   "scaled (default: from --preset; fixed under both until a study picks)",
    "rms_beta": "--weight_rule rms: β applied to the gap over its running root-mean-square",
    "ess_fraction": "--weight_rule ess: the weights' effective sample size (Σω)²/Σω² as a fraction of the batch, in "
                    "(0, 1); 1 is uniform weights",
    "expectile": "expectile τ of the expectile critic",
    "num_components": "N, mixture components (default: from --preset and the dataset)",
    "num_critics": "K, critic ensemble size (default: from --preset and the dataset)",
    "beta": "β, inverse temperature of LOM's imitation weight (default: from --preset and the dataset)",
    "ac_rand": "std of noise added to the selected component's action (default: from --preset and the dataset)",
    "smooth_noise": "std of the sarsa critic's target smoothing noise (default: from --preset and the dataset)",
    "weight_clip": "C, upper clip of LOM's imitation weight (default: from --preset and the dataset)",
    "min_component_weight": "LOM: only components with at least this mixture weight at a state compete for k*(s) "
                            "(default: from --preset; 0 = the paper's rule)",
    "discount": f"discount factor γ {per_dataset('discount')}",
    "normalise": "standardise states with the dataset's mean and std (1/0)",
    "reward_scaling": "auto (return_range for IQL on HalfCheetah/Hopper/Walker2d data, for LOM what --preset says; "
                      "else none), return_range "
                      "(rewards × 1000 / (highest − lowest episode return)) or none",
    "tau": "Polyak averaging rate of target networks",
    "gmm_batch_size": f"batch size of behaviour-mixture pre-training {per_dataset('gmm_batch_size')}",
    "critic_batch_size": "LOM critic batch size",
    "mode_batch_size": "LOM mode-value batch size, in states, each scored for every component "
                       f"{per_dataset('mode_batch_size')}",
    "actor_batch_size": "LOM actor batch size",
    "hidden_width": f"units per hidden layer (two layers) of every agent's actor and critics and of LOM's mode-value "
                    f"network {per_dataset('hidden_width')}",
    "gmm_hidden_width": f"units per hidden layer (two layers) of LOM's behaviour mixture {per_dataset('gmm_hidden_width')}",
    "gmm_lr": "Adam learning rate of the behaviour mixture",
    "critic_lr": "Adam learning rate of LOM's critic",
    "mode_lr": "Adam learning rate of LOM's mode-value network",
    "actor_lr": "Adam learning rate of LOM's actor",
    "device": "auto (CUDA when present), cpu, cuda or cuda:N",
    "compile": "torch.compile the networks (1/0)",
    "cuda_graphs": "capture each training step once as CUDA graphs and replay it: auto (on for CUDA devices), 1 "
                   "(CUDA only) or 0 (eager steps)",
    "resume": "continue the run in the run folder from its last checkpoint (starts fresh if there is none)",
    "log_path": "root folder of run folders",
    "project": "project name (run folder level, and the wandb project)",
    "group": "group name (run folder level, and the wandb group)",
    "enable_wandb": "log to Weights & Biases (1/0); works offline with WANDB_MODE=offline",
}


def parse_seeds(text: str) -> tuple[int, ...]:
    """--seeds: "0,1,2", "0-4" or a mix ("0-2,7"), each seed once."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise LOMError(f"--seeds {text!r}: expected seeds like 0,1,2 or a range like 0-4")
        if dash and int(last) < int(first):
            raise LOMError(f"--seeds {text!r}: the range {part} runs backwards; write it {last}-{first}")
        seeds += range(int(first), int(last) + 1) if dash else [int(first)]
    if not seeds or len(set(seeds)) != len(seeds):
        raise LOMError(f"--seeds {text!r}: name each seed once (and at least one), e.g. 0,1,2 or 0-4")
    return tuple(seeds)


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0 or true/false, got {text!r}")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each flag's default, except where there is none to show (None, or an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required or isinstance(action, argparse._StoreTrueAction):
            return action.help
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line costs the user one line, not a usage dump, and --help shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=description)
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = hints[f.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if base is bool:
            parser.add_argument(f"--{f.name}", type=parse_bool, nargs="?", const=True, default=f.default,
                                help=FLAG_HELP[f.name])
        else:
            parser.add_argument(f"--{f.name}", type=base, default=f.default, help=FLAG_HELP[f.name])
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
