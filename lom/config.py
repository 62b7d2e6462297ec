"""Typed configuration: the run's flags, LOM's hyper-parameters and the one per-dataset table.

Every default lives here. `train.py` turns flags into a `TrainConfig`; `TrainConfig.resolve` fills what the flags
left open from the dataset's schedule and the preset (`preset_for`), and the result is what `config.json` records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LOMHyperParams:
    """The values the paper tunes per dataset (the paper's hyper-parameter table; README "Hyper-parameters")."""

    num_components: int = 5  # N: mixture components
    num_critics: int = 2  # K: critic ensemble size
    beta: float = 5.0  # inverse temperature of the imitation weight
    ac_rand: float = 0.0  # std of the noise added to the selected component's action
    smooth_noise: float = 0.2  # std of the target smoothing noise (sarsa critic)
    weight_clip: float = 50.0  # C: upper clip of the imitation weight
    # Components with less mixture weight than this at a state are not candidates for k*(s) there; 0 (the paper's
    # rule) considers every component.
    min_component_weight: float = 0.0


def _hp(k: int, n: int, beta: float, ac_rand: float, smooth: float, c: float, min_w: float = 0.0) -> LOMHyperParams:
    return LOMHyperParams(num_components=n, num_critics=k, beta=beta, ac_rand=ac_rand, smooth_noise=smooth,
                          weight_clip=c, min_component_weight=min_w)


# D4RL's locomotion datasets, the one list: <env>-<kind>-v2 for every env and kind (lom.data.registry makes their
# specs). The paper reports the kinds PAPER_TABLE_KINDS, in that order: the report's tables and the sweep's default
# datasets follow it.
D4RL_ENVS = ("halfcheetah", "hopper", "walker2d")
D4RL_KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay")
PAPER_TABLE_KINDS = ("medium-replay", "full-replay", "medium", "medium-expert", "expert")

# The authors' per-dataset values (K, N, β, ac_rand, smooth_noise, C). Random datasets have no published values:
# they use the same environment's medium values.
PAPER_HYPERPARAMS: dict[str, LOMHyperParams] = {
    "halfcheetah-medium-replay-v2": _hp(1, 5, 5, 0.4, 0.2, 100),
    "hopper-medium-replay-v2": _hp(1, 5, 5, 0.0, 0.2, 50),
    "walker2d-medium-replay-v2": _hp(1, 10, 5, 0.0, 0.2, 50),
    "halfcheetah-full-replay-v2": _hp(1, 10, 5, 0.4, 0.2, 100),
    "hopper-full-replay-v2": _hp(2, 10, 5, 0.0, 0.2, 50),
    "walker2d-full-replay-v2": _hp(1, 10, 5, 0.0, 0.2, 50),
    "halfcheetah-medium-v2": _hp(1, 2, 5, 0.4, 0.2, 100),
    "hopper-medium-v2": _hp(3, 5, 5, 0.0, 0.2, 50),
    "walker2d-medium-v2": _hp(1, 2, 5, 0.0, 0.2, 50),
    "halfcheetah-medium-expert-v2": _hp(2, 1, 0.1, 0.0, 0.0, 50),
    "hopper-medium-expert-v2": _hp(6, 2, 0.1, 0.0, 0.0, 50),
    "walker2d-medium-expert-v2": _hp(3, 5, 0.1, 0.2, 0.0, 50),
    "halfcheetah-expert-v2": _hp(1, 2, 0.1, 0.0, 0.0, 50),
    "hopper-expert-v2": _hp(1, 2, 0.1, 0.0, 0.2, 50),
    "walker2d-expert-v2": _hp(1, 5, 0.1, 0.2, 0.0, 50),
}
for _env in D4RL_ENVS:
    PAPER_HYPERPARAMS[f"{_env}-random-v2"] = PAPER_HYPERPARAMS[f"{_env}-medium-v2"]


def _most_common(values: list):
    """The value most rows share; a tie goes to the smallest (e.g. K 2, 6, 3 -> 2)."""
    return min(values, key=lambda v: (-values.count(v), v))


def _kind_row(kind: str) -> LOMHyperParams:
    """A kind's values for an environment without a row of its own: each value the one most of the three
    environments' rows of that kind use (β agrees across a kind's rows anyway), ties to the smaller."""
    rows = [PAPER_HYPERPARAMS[f"{env}-{kind}-v2"] for env in D4RL_ENVS]
    return LOMHyperParams(**{f.name: _most_common([getattr(r, f.name) for r in rows])
                             for f in dataclasses.fields(LOMHyperParams)})


# The paper preset on data that records its kind but whose environment has no row (e.g. Ant-v4 medium-expert).
PAPER_KIND_ROWS = {kind: _kind_row(kind) for kind in D4RL_KINDS}

# The built-in benchmark's own row: N = 4, one component per behaviour (why: docs/method.md, "Where the defaults come
# from").
PAPER_HYPERPARAMS["multimodal-fork-v0"] = _hp(1, 4, 5, 0.0, 0.2, 50, min_w=0.05)
# The Fetch datasets (lom/fetch): like the fork, a reward of at most 1 paid once, at one of three goals, so they take
# the fork's row (N = 4: one component per behaviour and one spare).
FETCH_DATASETS = ("fetch-reach-multimodal-v0", "fetch-push-multimodal-v0", "fetch-pickandplace-multimodal-v0")
for _name in FETCH_DATASETS:
    PAPER_HYPERPARAMS[_name] = PAPER_HYPERPARAMS["multimodal-fork-v0"]
# The built-in benchmarks' rows are their own, not the paper's: both presets use them whole, on unscaled rewards
# (a single reward of at most 1 at the end, so there is no return range to speak of).
BUILTIN_ROWS = ("multimodal-fork-v0", *FETCH_DATASETS)

# `--preset` picks LOM's method and the values `None` fields take; every flag still overrides.
#   paper: the authors' released agent: sarsa critic, imitation weight against Q(s, π(s)), unscaled rewards, every
#          component a candidate for k*(s); the paper's row for a standard name (D4RL, Minari MuJoCo), else for the
#          environment and kind the data records (`paper_row`), and PAPER_DEFAULT for data that records nothing.
#   lom:   ours, one rule for every dataset (docs/method.md "Hyper-parameters"): expectile critic, weight against
#          V(s), rewards scaled by the episode-return range (a property measured on the data, see REWARD_SCALINGS)
#          with LOM_BETA, the support floor LOM_MIN_COMPONENT_WEIGHT; K, N, ac_rand, smooth_noise and C from the
#          paper's row for standard names and from `lom_default_for` (N from the action dimension) for all other
#          data. No value depends on a file's name.
PRESETS = ("lom", "paper")
PAPER_DEFAULT = LOMHyperParams()
# The paper's smallest β, on rewards scaled to a return range of RETURN_RANGE_TARGET (why: docs/method.md, "Where the
# defaults come from").
LOM_BETA = 0.1
# The lom preset's imitation weight rule (WEIGHT_RULES): the paper's fixed β until the tuning study (issue 32) picks.
LOM_WEIGHT_RULE = "fixed"
# The support floor (why: docs/method.md, "Where the defaults come from").
LOM_MIN_COMPONENT_WEIGHT = 0.05
# Data without a row in the paper's table: K = 1, ac_rand 0, C = 50 (the paper's most common values) and N from the
# action dimension (why: docs/method.md, "Where the defaults come from").
LOM_DEFAULT = _hp(1, 2, LOM_BETA, 0.0, 0.2, 50, min_w=LOM_MIN_COMPONENT_WEIGHT)
LOM_FEW_ACTION_DIMS = 3  # data with at most this many action dimensions take LOM_FEW_DIMS_COMPONENTS components
LOM_FEW_DIMS_COMPONENTS = 10


def lom_default_for(action_dim: int | None) -> LOMHyperParams:
    """The one rule for data without a paper row: LOM_DEFAULT, with N from the action dimension (None: unknown,
    which `TrainConfig.resolve` refuses when LOM would need it)."""
    if action_dim is not None and action_dim <= LOM_FEW_ACTION_DIMS:
        return dataclasses.replace(LOM_DEFAULT, num_components=LOM_FEW_DIMS_COMPONENTS)
    return LOM_DEFAULT


@dataclass(frozen=True)
class Preset:
    """What a preset gives LOM on one dataset: the method choices, the per-dataset values and the name of the row
    they came from (recorded in config.json as `preset_row`)."""

    critic: str
    weight_baseline: str
    weight_rule: str
    scale_rewards: bool
    values: LOMHyperParams
    row: str


def preset_scales_rewards(preset: str, dataset_name: str) -> bool:
    """Whether the preset trains LOM on return-range-scaled rewards: ours does, but not on the built-in benchmark."""
    return preset == "lom" and dataset_name not in BUILTIN_ROWS


def paper_row(dataset_name: str, env_family: str | None = None, kind: str | None = None
              ) -> tuple[str, LOMHyperParams] | None:
    """The paper's row for a dataset and its name: by the dataset's standard name (a D4RL name), else by the
    environment and kind its data records (that environment's row, else PAPER_KIND_ROWS[kind]); None if neither."""
    for name in (dataset_name, f"{env_family}-{kind}-v2"):
        if name in PAPER_HYPERPARAMS:
            return name, PAPER_HYPERPARAMS[name]
    if kind in PAPER_KIND_ROWS:
        return f"{kind} (kind rule)", PAPER_KIND_ROWS[kind]
    return None


def preset_for(preset: str, dataset_name: str, action_dim: int | None = None, env_family: str | None = None,
               kind: str | None = None) -> Preset:
    """The preset's method and values for a dataset (see PRESETS). `dataset_name` is the dataset's standard name
    (a D4RL name, a Minari MuJoCo id's D4RL counterpart, the built-in benchmark) and matters only through the
    tables; `env_family` and `kind` (what the data records, e.g. hopper, medium-expert) only under the paper preset;
    `action_dim` (the data's; None if unknown) only for data without a row under the lom preset."""
    scale = preset_scales_rewards(preset, dataset_name)
    if dataset_name in BUILTIN_ROWS:
        row = PAPER_HYPERPARAMS[dataset_name]
        critic, baseline = ("sarsa", "policy") if preset == "paper" else ("expectile", "value")
        floor = 0.0 if preset == "paper" else row.min_component_weight
        # Its row's β was set for the fixed rule on its unscaled 0/1 reward: both presets keep that rule here.
        return Preset(critic, baseline, "fixed", scale, dataclasses.replace(row, min_component_weight=floor),
                      dataset_name)
    if preset == "paper":
        name, values = paper_row(dataset_name, env_family, kind) or ("PAPER_DEFAULT", PAPER_DEFAULT)
        return Preset("sarsa", "policy", "fixed", scale, dataclasses.replace(values, min_component_weight=0.0), name)
    if dataset_name in PAPER_HYPERPARAMS:
        values = dataclasses.replace(PAPER_HYPERPARAMS[dataset_name], beta=LOM_BETA,
                                     min_component_weight=LOM_MIN_COMPONENT_WEIGHT)
        return Preset("expectile", "value", LOM_WEIGHT_RULE, scale, values, dataset_name)
    return Preset("expectile", "value", LOM_WEIGHT_RULE, scale, lom_default_for(action_dim),
                  "LOM_DEFAULT (N from the action dimension)")


@dataclass(frozen=True)
class Schedule:
    """How long a run trains, how often it is evaluated, the batch sizes and network widths that set the cost of a
    step, and the discount (how far ahead values look)."""

    training_steps: int = 1_000_000
    gmm_steps: int = 200_000
    eval_every: int = 10_000
    gmm_batch_size: int = 512
    mode_batch_size: int = 1024
    hidden_width: int = 256  # units in each of the two hidden layers of every network but the mixture
    gmm_hidden_width: int = 512  # the behaviour mixture's two hidden layers
    discount: float = 0.99


PAPER_SCHEDULE = Schedule()
# The built-in benchmark's schedule: a first run under two minutes on 2 CPU cores, γ = 0.9 (why: docs/method.md,
# "Where the defaults come from").
SCHEDULES: dict[str, Schedule] = {
    "multimodal-fork-v0": Schedule(training_steps=5_000, gmm_steps=2_000, eval_every=500, hidden_width=192,
                                   mode_batch_size=512, discount=0.9),
    # The Fetch tasks: episodes of at most 50 steps, so γ = 0.95; about 10 CPU-minutes for a LOM run.
    **dict.fromkeys(FETCH_DATASETS, Schedule(training_steps=10_000, gmm_steps=3_000, eval_every=1_000,
                                             hidden_width=192, mode_batch_size=512, discount=0.95)),
}


CRITICS = ("expectile", "sarsa")
# How LOM's imitation weight is made from the gap Q(s, a*) − b(s) (lom/agents/weights.py): fixed, the paper's
# clip(exp(β·gap), 0, C); rms, the gap over a running root-mean-square of gaps (MARWIL); ess, a per-batch temperature
# that gives the weights a target effective sample size. Each has one number: β, RMS_BETA or ESS_FRACTION.
WEIGHT_RULES = ("fixed", "rms", "ess")
# Untuned starting values of the two scale-free rules' numbers (issue 32 chooses on the tuning set): β_rms = 1 weighs a
# gap one running RMS above the baseline e ≈ 2.7 times one at it (MARWIL's β = 1); ESS/n = 0.5 lets about half the
# batch carry the actor's update.
RMS_BETA = 1.0
ESS_FRACTION = 0.5
# How LOM's actor learning rate moves over a run: constant, or a cosine decay to 0 at the last training step.
LR_SCHEDULES = ("constant", "cosine")
WEIGHT_RULE_NUMBERS = {"fixed": "beta", "rms": "rms_beta", "ess": "ess_fraction"}  # each rule's one flag
# What LOM's imitation weight compares Q(s, a*) with: the critic's state value V(s) (in-distribution), or
# Q(s, π(s)) at the actor's own action (the authors' rule).
WEIGHT_BASELINES = ("value", "policy")
# How rewards are rescaled before training: "auto" picks return_range for IQL on locomotion data (IQL's authors'
# rule), for LOM what its preset says (`Preset.scale_rewards`), and none for BC and TD3BC.
REWARD_SCALINGS = ("auto", "return_range", "none")
# Whether each training step is captured once as CUDA graphs and replayed (lom/training/captured_steps.py): auto = on
# CUDA devices.
CUDA_GRAPHS = ("auto", "1", "0")
# return_range: rewards × RETURN_RANGE_TARGET / (highest − lowest episode return in the dataset), as IQL's authors
# do for MuJoCo locomotion (IQL paper, appendix), so that β means the same on every such dataset.
RETURN_RANGE_TARGET = 1000.0
LOCOMOTION_ENVS = ("HalfCheetah", "Hopper", "Walker2d")
# The agents that fit LOM's behaviour mixture, and so read its settings (N, the mixture's width, rate and batch).
MIXTURE_AGENTS = ("LOM", "MDN")


def per_dataset(name: str) -> str:
    """"(default: X; <dataset>: Y)" for a schedule field's help, read from SCHEDULES."""
    default = getattr(PAPER_SCHEDULE, name)
    exceptions = "".join(f"; {dataset}: {getattr(schedule, name):,}" for dataset, schedule in SCHEDULES.items()
                         if getattr(schedule, name) != default)
    return f"(default: {default:,}{exceptions})"


def flag(default, help: str, lom: bool = False):
    """A config field that is also a command-line flag: `help` is its --help line; `lom`: a setting only LOM reads
    (other agents record it but do not use it)."""
    return dataclasses.field(default=default, metadata={"help": help, "lom": lom})


@dataclass
class TrainConfig:
    """Everything one run needs. `None` means "take the dataset's default" (see `resolve`)."""

    env_name: str = flag(
        "multimodal-fork-v0",
        "dataset to train on: a D4RL name (e.g. halfcheetah-medium-replay-v2, any case), multimodal-fork-v0 (built in,"
        " the default), minari:<dataset id>, or with --dataset_path a gymnasium env id")
    dataset_path: str | None = flag(
        None,
        "train on this D4RL-format HDF5 file instead of downloading (--env_name names its env)")
    agent: str = flag(
        "LOM", "LOM, or a baseline: BC, IQL, TD3BC, MDN (LOM's mixture acting with its heaviest component)")
    preset: str = flag(
        "lom",
        "LOM's method and default values: lom (ours: expectile critic, weight against V(s), rewards scaled by the "
        "return range, β 0.1, support floor 0.05; one rule for every dataset) or paper (the authors' released agent: "
        "sarsa critic, weight against Q(s, π(s)), unscaled rewards, no floor, the paper's row for the dataset, or for "
        "the env and kind a file records in metadata/; config.json's preset_row names it); LOM-paper run folders hold "
        "the latter; every flag below still overrides", lom=True)
    seed: int = flag(0, "random seed; a CPU run with the same seed and number of threads is repeatable bit for bit")
    training_steps: int | None = flag(None, f"main training steps {per_dataset('training_steps')}")
    gmm_steps: int | None = flag(
        None,
        f"LOM: behaviour-mixture pre-training steps {per_dataset('gmm_steps')}", lom=True)
    gmm_path: str | None = flag(
        None,
        "LOM: load a trained behaviour mixture (a run's gmm.pt) instead of pre-training", lom=True)
    eval_every: int | None = flag(None, f"evaluate every this many training steps {per_dataset('eval_every')}")
    eval_episodes: int = flag(10, "episodes per evaluation, run in parallel")
    checkpoint_every: int = flag(50_000, "write checkpoint.pt every this many steps (and always at the end)")
    log_every: int = flag(1_000, "read losses back from the device (and check them for NaN) every this many steps")
    # LOM's method choices and per-dataset values (None: from the preset, see `preset_for`).
    critic: str | None = flag(
        None,
        "LOM's critic: expectile (IQL-style) or sarsa (the authors' ensemble with next actions) (default: from "
        "--preset)", lom=True)
    mode_net: str = flag(
        "multihead",
        "LOM's mode-value network: multihead (one output per component) or onehot (the authors' form)", lom=True)
    weight_baseline: str | None = flag(
        None,
        "LOM's imitation weight exp(β·(Q(s, a*) − b(s))) compares with b = value: the expectile critic's V(s), or "
        "policy: Q(s, π(s)) (the authors' rule) (default: from --preset)", lom=True)
    weight_rule: str | None = flag(
        None,
        "how LOM's imitation weight ω is made from the gap g = Q(s, a*) − b(s), each rule capped at C: fixed: "
        "exp(β·g)"
        " (the paper's; β in units of 1/reward), rms: exp(rms_beta · g / c), c² a running mean of g² (MARWIL's "
        "normalisation), or ess: n·softmax(λ·g) over the batch, λ set so the weights' effective sample size is "
        "ess_fraction of the batch; rms and ess do not change when rewards are scaled (default: from --preset; fixed "
        "under both until a study picks)", lom=True)
    rms_beta: float = flag(
        RMS_BETA,
        "--weight_rule rms: β applied to the gap over its running root-mean-square", lom=True)
    ess_fraction: float = flag(
        ESS_FRACTION,
        "--weight_rule ess: the weights' effective sample size (Σω)²/Σω² as a fraction of the batch, in (0, 1); 1 "
        "is "
        "uniform weights", lom=True)
    expectile: float = flag(0.7, "expectile τ of the expectile critic", lom=True)
    num_components: int | None = flag(None, "N, mixture components (default: from --preset and the dataset)", lom=True)
    num_critics: int | None = flag(None, "K, critic ensemble size (default: from --preset and the dataset)", lom=True)
    beta: float | None = flag(
        None,
        "β, inverse temperature of LOM's imitation weight (default: from --preset and the dataset)", lom=True)
    ac_rand: float | None = flag(
        None,
        "std of noise added to the selected component's action (default: from --preset and the dataset)", lom=True)
    smooth_noise: float | None = flag(
        None,
        "std of the sarsa critic's target smoothing noise (default: from --preset and the dataset)", lom=True)
    weight_clip: float | None = flag(
        None,
        "C, upper clip of LOM's imitation weight (default: from --preset and the dataset)", lom=True)
    min_component_weight: float | None = flag(
        None,
        "LOM: only components with at least this mixture weight at a state compete for k*(s) (default: from --preset; "
        "0 = the paper's rule)", lom=True)
    # Optimisation settings; `None`: from the dataset's schedule.
    discount: float | None = flag(None, f"discount factor γ {per_dataset('discount')}")
    normalise: bool = flag(True, "standardise states with the dataset's mean and std (1/0)")
    reward_scaling: str = flag(
        "auto",
        "auto (return_range for IQL on HalfCheetah/Hopper/Walker2d data, for LOM what --preset says; else none), "
        "return_range (rewards × 1000 / (highest − lowest episode return)) or none")
    tau: float = flag(0.005, "Polyak averaging rate of target networks")
    gmm_batch_size: int | None = flag(
        None,
        f"batch size of behaviour-mixture pre-training {per_dataset('gmm_batch_size')}", lom=True)
    critic_batch_size: int = flag(256, "LOM critic batch size", lom=True)
    mode_batch_size: int | None = flag(
        None,
        f"LOM mode-value batch size, in states, each scored for every component {per_dataset('mode_batch_size')}",
        lom=True)
    actor_batch_size: int = flag(256, "LOM actor batch size", lom=True)
    hidden_width: int | None = flag(
        None,
        f"units per hidden layer (two layers) of every agent's actor and critics and of LOM's mode-value network "
        f"{per_dataset('hidden_width')}")
    gmm_hidden_width: int | None = flag(
        None,
        f"units per hidden layer (two layers) of LOM's behaviour mixture {per_dataset('gmm_hidden_width')}", lom=True)
    gmm_lr: float = flag(1e-3, "Adam learning rate of the behaviour mixture", lom=True)
    critic_lr: float = flag(3e-4, "Adam learning rate of LOM's critic", lom=True)
    mode_lr: float = flag(1e-3, "Adam learning rate of LOM's mode-value network", lom=True)
    actor_lr: float = flag(1e-3, "Adam learning rate of LOM's actor", lom=True)
    actor_lr_schedule: str = flag(
        "constant",
        "LOM's actor learning rate over the run: constant (the paper's) or cosine (from --actor_lr to 0 over "
        "--training_steps, as IQL's actor)", lom=True)
    # Where and how to run.
    device: str = flag("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    compile: bool = flag(False, "torch.compile the networks (1/0)")
    cuda_graphs: str = flag(
        "auto",
        "capture each training step once as CUDA graphs and replay it: auto (on for CUDA devices), 1 (CUDA only) or 0 "
        "(eager steps)")
    resume: bool = flag(
        False,
        "continue the run in the run folder from its last checkpoint (starts fresh if there is none)")
    log_path: str = flag("runs", "root folder of run folders")
    project: str = flag("LOM", "project name (run folder level, and the wandb project)")
    group: str = flag("default", "group name (run folder level, and the wandb group)")
    enable_wandb: bool = flag(False, "log to Weights & Biases (1/0); works offline with WANDB_MODE=offline")
    # The chosen baseline's hyper-parameters set on the command line (--iql_beta 5 → {"beta": 5.0}), by field name
    # of its config in lom/agents/configs.py; the rest keep that config's defaults.
    agent_hp: dict = field(default_factory=dict)


    def resolve(self, dataset_name: str, action_dim: int | None = None, env_family: str | None = None,
                kind: str | None = None) -> "TrainConfig":
        """Fill every `None` from the dataset's schedule and the preset's method and values (`action_dim`: the
        data's, which LOM's one rule needs for data without a row in the paper's table; `env_family`, `kind`: what
        the data records, which the paper preset reads; see `preset_for`)."""
        from lom.errors import LOMError

        if self.preset not in PRESETS:
            raise LOMError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}")
        needs_n = (self.agent in MIXTURE_AGENTS and self.preset == "lom" and self.num_components is None
                   and dataset_name not in PAPER_HYPERPARAMS)
        if needs_n and action_dim is None:
            raise LOMError(f"{dataset_name} has no row in the paper's table and its actions are not a flat vector, so "
                           "LOM's default has no N for it: give --num_components")
        schedule = SCHEDULES.get(dataset_name, PAPER_SCHEDULE)
        preset = preset_for(self.preset, dataset_name, action_dim, env_family, kind)
        paper = preset.values
        filled = {
            f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(schedule, f.name)
            for f in dataclasses.fields(Schedule)
        }
        filled.update(
            {
                f.name: getattr(self, f.name) if getattr(self, f.name) is not None else getattr(paper, f.name)
                for f in dataclasses.fields(LOMHyperParams)
            }
        )
        filled["critic"] = self.critic or preset.critic
        filled["weight_baseline"] = self.weight_baseline or preset.weight_baseline
        filled["weight_rule"] = self.weight_rule or preset.weight_rule
        return dataclasses.replace(self, **filled)

    def validate(self) -> None:
        """Refuse values that cannot work, with one line naming the flag."""
        from lom.errors import LOMError
        from lom.networks import MODE_VALUE_NETS

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise LOMError(message)

        need(self.critic in CRITICS, f"--critic {self.critic!r} is unknown: choose one of {', '.join(CRITICS)}")
        need(self.weight_baseline in WEIGHT_BASELINES,
             f"--weight_baseline {self.weight_baseline!r} is unknown: choose one of {', '.join(WEIGHT_BASELINES)}")
        need(self.weight_baseline != "value" or self.critic == "expectile" or self.agent != "LOM",
             "--weight_baseline value compares with the expectile critic's V(s): use --critic expectile, or "
             "--weight_baseline policy with --critic sarsa")
        need(self.weight_rule in WEIGHT_RULES,
             f"--weight_rule {self.weight_rule!r} is unknown: choose one of {', '.join(WEIGHT_RULES)}")
        need(self.actor_lr_schedule in LR_SCHEDULES,
             f"--actor_lr_schedule {self.actor_lr_schedule!r} is unknown: choose one of {', '.join(LR_SCHEDULES)}")
        need(0.0 < self.ess_fraction < 1.0, f"--ess_fraction must lie in (0, 1), got {self.ess_fraction}")
        need(self.cuda_graphs in CUDA_GRAPHS,
             f"--cuda_graphs {self.cuda_graphs!r} is unknown: choose one of {', '.join(CUDA_GRAPHS)}")
        need(self.reward_scaling in REWARD_SCALINGS,
             f"--reward_scaling {self.reward_scaling!r} is unknown: choose one of {', '.join(REWARD_SCALINGS)}")
        need(self.mode_net in MODE_VALUE_NETS, f"--mode_net {self.mode_net!r} is unknown: choose one of {', '.join(MODE_VALUE_NETS)}")
        for name in ("training_steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every", "num_components",
                     "num_critics", "gmm_batch_size", "critic_batch_size", "mode_batch_size", "actor_batch_size",
                     "hidden_width", "gmm_hidden_width"):
            need(getattr(self, name) >= 1, f"--{name} must be a positive whole number, got {getattr(self, name)}")
        need(self.gmm_steps >= 0, f"--gmm_steps must be 0 or more, got {self.gmm_steps}")
        need(self.gmm_steps > 0 or self.gmm_path or self.agent != "LOM",
             "--gmm_steps 0 leaves LOM's behaviour mixture untrained: give a positive --gmm_steps or a --gmm_path")
        need(0.0 < self.expectile < 1.0, f"--expectile must lie in (0, 1), got {self.expectile}")
        need(0.0 <= self.discount <= 1.0, f"--discount must lie in [0, 1], got {self.discount}")
        need(0.0 < self.tau <= 1.0, f"--tau must lie in (0, 1], got {self.tau}")
        need(0 <= self.min_component_weight < 1,
             f"--min_component_weight must lie in [0, 1), got {self.min_component_weight}")
        for name in ("beta", "rms_beta", "ac_rand", "smooth_noise", "weight_clip", "gmm_lr", "critic_lr", "mode_lr",
                     "actor_lr"):
            need(getattr(self, name) >= 0, f"--{name} must not be negative, got {getattr(self, name)}")

    def scales_rewards(self, dataset_name: str, env_id: str) -> bool:
        """Whether rewards are rescaled by the dataset's episode-return range (see REWARD_SCALINGS)."""
        if self.reward_scaling != "auto":
            return self.reward_scaling == "return_range"
        if self.agent == "LOM":
            return preset_scales_rewards(self.preset, dataset_name)
        return self.agent == "IQL" and env_id.split("-")[0] in LOCOMOTION_ENVS

    @property
    def agent_folder(self) -> str:
        """The run folder level of the agent: LOM under the paper preset trains in LOM-paper, beside LOM."""
        return f"{self.agent}-paper" if self.agent == "LOM" and self.preset == "paper" else self.agent

    @property
    def hidden(self) -> tuple[int, int]:
        """The two hidden layers of the actors, critics and mode-value network, for every agent alike."""
        return (self.hidden_width, self.hidden_width)

    @property
    def lom(self) -> LOMHyperParams:
        return LOMHyperParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LOMHyperParams)})
