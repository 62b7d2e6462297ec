"""Agents: LOM and the baselines it is compared with, all behind one interface (`lom.agents.base.Agent`).

The registry: each agent's name (what `--agent` accepts), the module holding its class (`<name>Agent`, imported when
first used) and, for the baselines, its config in lom/agents/configs.py. Adding an agent is its module plus one line
here (and its config, if it has settings of its own). Importing this
package loads no torch, so the command line can read the configs without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Sequence

from lom.agents.configs import BCConfig, IQLConfig, TD3BCConfig, check
from lom.config import TrainConfig
from lom.errors import LOMError

if TYPE_CHECKING:
    from lom.agents.base import Agent

# name: (module, config class or None when the agent's settings are TrainConfig's own: LOM's, and MDN's, which
# are LOM's mixture settings)
REGISTRY: dict[str, tuple[str, type | None]] = {
    "LOM": ("lom.agents.lom", None),
    "BC": ("lom.agents.bc", BCConfig),
    "IQL": ("lom.agents.iql", IQLConfig),
    "TD3BC": ("lom.agents.td3bc", TD3BCConfig),
    "MDN": ("lom.agents.mdn", None),
}


def agent_class(name: str) -> type[Agent]:
    check_name(name)
    return getattr(importlib.import_module(REGISTRY[name][0]), f"{name}Agent")


def check_name(name: str) -> None:
    if name not in REGISTRY:
        raise LOMError(f"--agent {name!r} is unknown: choose one of {', '.join(REGISTRY)}")


def flag_prefix(name: str) -> str:
    """How an agent's hyper-parameters are spelled on the command line: --iql_beta, --td3bc_alpha, --bc_lr."""
    return name.lower()


def agent_config(cfg: TrainConfig):
    """The typed config of `cfg.agent`, from its defaults and `cfg.agent_hp`, or None for an agent whose settings are
    TrainConfig's; refuses an unknown agent, unknown names and bad values."""
    check_name(cfg.agent)
    config_class = REGISTRY[cfg.agent][1]
    if config_class is None:
        if cfg.agent_hp:
            raise LOMError(f"{cfg.agent} takes no agent_hp ({', '.join(cfg.agent_hp)}): its settings are train.py's "
                           "own flags")
        return None
    fields = set(config_class.__dataclass_fields__)
    unknown = sorted(set(cfg.agent_hp) - fields)
    if unknown:
        raise LOMError(f"{cfg.agent} has no hyper-parameter {', '.join(unknown)}: it has {', '.join(sorted(fields))}")
    config = config_class(**cfg.agent_hp)
    check(config, flag_prefix(cfg.agent))
    return config


def make_agent(cfg: TrainConfig, obs_dim: int, act_dim: int, capturable: bool = False,
               seeds: Sequence[int] | None = None) -> Agent:
    """The agent `cfg` names, as one stacked model of `seeds` (default: cfg.seed alone; lom/seeds.py);
    `capturable`: with optimisers a CUDA graph can replay (lom/training/captured_steps.py)."""
    cls, config = agent_class(cfg.agent), agent_config(cfg)
    extra = {} if config is None else {"hp": config}
    return cls(obs_dim, act_dim, cfg, capturable=capturable, seeds=seeds or (cfg.seed,), **extra)


def __getattr__(name: str):
    """`Agent` and `AGENTS` (name → class) load the agents, and with them torch, only when asked for."""
    if name == "Agent":
        from lom.agents.base import Agent

        return Agent
    if name == "AGENTS":
        return {agent: agent_class(agent) for agent in REGISTRY}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
