"""Agents: LOM and the baselines it is compared with, all behind one interface (`Agent`)."""

from __future__ import annotations

from typing import Sequence

from lom.agents.base import Agent
from lom.agents.bc import BCAgent
from lom.agents.iql import IQLAgent
from lom.agents.lom import LOMAgent
from lom.agents.td3bc import TD3BCAgent
from lom.config import TrainConfig
from lom.errors import LOMError

# Keyed by each class's own `name`; config.AGENT_NAMES lists the same names, in this order, for the flags (config
# sits below the agents and loads no torch): tests/test_layout.py checks that the two agree.
AGENTS: dict[str, type[Agent]] = {agent.name: agent for agent in (LOMAgent, BCAgent, IQLAgent, TD3BCAgent)}


def make_agent(cfg: TrainConfig, obs_dim: int, act_dim: int, capturable: bool = False,
               seeds: Sequence[int] | None = None) -> Agent:
    """The agent `cfg` names, as one stacked model of `seeds` (default: cfg.seed alone; lom/seeds.py);
    `capturable`: with optimisers a CUDA graph can replay (lom/training/captured_steps.py)."""
    if cfg.agent not in AGENTS:
        raise LOMError(f"unknown agent {cfg.agent!r}: choose one of {', '.join(AGENTS)}")
    return AGENTS[cfg.agent](obs_dim, act_dim, cfg, capturable=capturable, seeds=seeds or (cfg.seed,))
