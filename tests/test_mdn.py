"""--agent MDN acts with the mean of its mixture's heaviest component at each state, whatever the other components'
means or spreads (the paper's MDN column: LOM without the value-based choice of a mode)."""

from __future__ import annotations

import dataclasses

import torch

from lom.agents import make_agent
from lom.agents.mdn import heaviest_mean
from lom.config import TrainConfig


def test_the_heaviest_component_is_chosen_per_state():
    means = torch.tensor([[[[0.1, 0.2], [0.5, -0.5], [0.9, 0.9]],     # state 0: component 1 heaviest
                           [[-0.3, 0.3], [0.0, 0.0], [0.7, -0.7]]]])  # state 1: component 2 heaviest
    log_weights = torch.log(torch.tensor([[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]]))
    chosen = heaviest_mean(means, log_weights)
    assert chosen.shape == (1, 2, 2)
    assert torch.equal(chosen, torch.tensor([[[0.5, -0.5], [0.7, -0.7]]]))


def test_the_agent_acts_with_its_mixtures_heaviest_mean_for_every_seed():
    cfg = dataclasses.replace(TrainConfig(agent="MDN").resolve("multimodal-fork-v0"), gmm_hidden_width=16)
    agent = make_agent(cfg, obs_dim=3, act_dim=2, seeds=(0, 1))
    obs = torch.randn(2, 5, 3)
    means, _, log_weights = agent.gmm(obs)
    weights = log_weights.exp()
    expected = torch.stack([torch.stack([means[s, b, weights[s, b].argmax()] for b in range(5)]) for s in range(2)])
    assert torch.equal(agent.act(obs), expected)
    one_seed = make_agent(cfg, obs_dim=3, act_dim=2)
    assert torch.equal(one_seed.policy_network()(obs[0]), one_seed.act(obs[:1])[0])  # what lom.export writes out
