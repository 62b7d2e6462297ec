"""Agents: LOM and the baselines it is compared with, all behind one interface (`Agent`)."""

from __future__ import annotations

from lom.agents.base import Agent
from lom.agents.bc import BCAgent
from lom.agents.iql import IQLAgent
from lom.agents.lom import LOMAgent
from lom.agents.td3bc import TD3BCAgent
from lom.config import TrainConfig
from lom.errors import LOMError

AGENTS: dict[str, type[Agent]] = {"LOM": LOMAgent, "BC": BCAgent, "IQL": IQLAgent, "TD3BC": TD3BCAgent}


def make_agent(cfg: TrainConfig, obs_dim: int, act_dim: int, capturable: bool = False) -> Agent:
    """The agent `cfg` names; `capturable`: with optimisers a CUDA graph can replay (lom/graphs.py)."""
    if cfg.agent not in AGENTS:
        raise LOMError(f"unknown agent {cfg.agent!r}: choose one of {', '.join(AGENTS)}")
    return AGENTS[cfg.agent](obs_dim, act_dim, cfg, capturable=capturable)
