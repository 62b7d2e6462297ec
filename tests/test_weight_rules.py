"""`--weight_rule`: LOM's imitation weight from the gap g = Q(s, a*) − b(s) (lom/agents/weights.py).

Known answers for each rule, the two scale-free rules unchanged when rewards (hence Q, V and every gap) are
multiplied by 100, and the rms rule's running state saved with the agent.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from test_method import lom_config, make_transitions

from lom.agents.lom import LOMAgent
from lom.agents.weights import (EffectiveSampleSizeWeight, FixedWeight, RunningRMSWeight, ess_fraction_of,
                                ess_weights, make_weight_rule)
from lom.config import WEIGHT_RULE_NUMBERS, WEIGHT_RULES, TrainConfig
from lom.data.batches import DeviceDataset, ObservationNormalizer
from lom.errors import LOMError
from lom.seeds import slice_seed, stack_seeds

SCALE = 100.0


def ess_of(weights: torch.Tensor) -> torch.Tensor:
    """(Σω)² / (n·Σω²) per seed, computed from the weights themselves."""
    return weights.sum(-1) ** 2 / (weights.shape[-1] * weights.square().sum(-1))


# -- fixed -------------------------------------------------------------------------------------------------------
def test_fixed_rule_is_the_papers_clipped_exponential_and_changes_with_the_reward_scale():
    gap = torch.tensor([[0.0, 0.5, -1.0, 2.0]])
    rule = FixedWeight(beta=2.0, clip=20.0)
    expected = torch.tensor([[1.0, math.e, math.exp(-2.0), 20.0]])  # e^4 > C
    torch.testing.assert_close(rule(gap), expected)
    assert not torch.allclose(rule(SCALE * gap), rule(gap))


# -- rms ---------------------------------------------------------------------------------------------------------
def test_rms_rule_divides_by_the_running_rms_of_a_known_sequence():
    """Horizon 2: c² is the exact mean of mean_B g² over the first two batches, then moves half-way each batch."""
    beta = 0.7
    rule = RunningRMSWeight(seeds=2, beta=beta, clip=1e6, horizon=2)
    batches = [torch.tensor([[1.0, -1.0], [2.0, 2.0]]),  # mean g²: 1 and 4
               torch.tensor([[3.0, 3.0], [0.0, 0.0]]),  # 9 and 0: c² = (1 + 9)/2 = 5 and (4 + 0)/2 = 2
               torch.tensor([[0.0, 2.0], [4.0, -4.0]])]  # 2 and 16, rate max(1/3, 1/2): c² = 3.5 and 9
    c_squared = [[1.0, 4.0], [5.0, 2.0], [3.5, 9.0]]
    for gap, c2 in zip(batches, c_squared):
        weight = rule(gap)
        torch.testing.assert_close(rule.mean_square, torch.tensor(c2))
        torch.testing.assert_close(weight, torch.exp(beta * gap / torch.tensor(c2).sqrt()[:, None]))
    assert rule.batches.item() == 3


def test_rms_rule_clips_at_c_and_weighs_an_all_zero_first_batch_evenly():
    rule = RunningRMSWeight(seeds=1, beta=5.0, clip=3.0)
    torch.testing.assert_close(rule(torch.zeros(1, 4)), torch.ones(1, 4))  # c = 0: no division by zero
    weight = rule(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    torch.testing.assert_close(weight[0, ::2], torch.full((2,), 3.0))  # exp(5 · 1/√0.5) > C


@pytest.mark.parametrize("seed", [0, 1])
def test_rms_rule_gives_the_same_weights_when_every_gap_is_100_times_larger(seed):
    """The same sequence of batches, once with rewards × 100: after every batch, the same weights."""
    g = torch.Generator().manual_seed(seed)
    plain, scaled = RunningRMSWeight(3, 1.5, 50.0, horizon=5), RunningRMSWeight(3, 1.5, 50.0, horizon=5)
    for step in range(20):
        gap = torch.randn(3, 64, generator=g) * (1 + step) + 0.3  # the critic's scale grows as it learns
        torch.testing.assert_close(scaled(SCALE * gap), plain(gap), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scaled.mean_square, SCALE**2 * plain.mean_square, rtol=1e-5, atol=0)


# -- ess ---------------------------------------------------------------------------------------------------------
def test_ess_rule_weighs_equal_gaps_equally():
    for gap in (torch.zeros(2, 8), torch.full((2, 8), -3.7)):
        torch.testing.assert_close(ess_weights(gap, 0.5, 50.0), torch.ones(2, 8))


@pytest.mark.parametrize("fraction", [0.6, 0.8, 0.95])
@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (3.0, 3.5), (-250.0, 40.0)])
def test_ess_rule_on_two_point_gaps_has_its_closed_form(fraction, low, high):
    """Half the gaps at `high`, half at `low`: ω_high = 2p, ω_low = 2(1 − p) with p = e^{λh}/(e^{λh} + e^{λl}),
    and ESS/n = 1 / (2(p² + (1 − p)²)) = f gives p = (1 + √(1/f − 1)) / 2, whatever the two values."""
    gap = torch.tensor([[high, low] * 8])
    p = (1 + math.sqrt(1 / fraction - 1)) / 2
    expected = torch.tensor([[2 * p, 2 * (1 - p)] * 8])
    torch.testing.assert_close(ess_weights(gap, fraction, 50.0), expected, rtol=1e-5, atol=1e-6)


def test_ess_rule_hits_its_target_per_seed_and_carries_no_gradient():
    g = torch.Generator().manual_seed(0)
    gap = (torch.randn(3, 256, generator=g) * torch.tensor([[0.01], [1.0], [300.0]])).requires_grad_()
    for fraction in (0.1, 0.5, 0.9):
        weight = ess_weights(gap, fraction, clip=1e6)
        assert not weight.requires_grad
        torch.testing.assert_close(ess_of(weight), torch.full((3,), fraction), rtol=1e-4, atol=0)
        torch.testing.assert_close(weight.mean(-1), torch.ones(3), rtol=1e-5, atol=0)
        assert (weight[:, gap.argmax(-1)].diagonal() == weight.max(-1).values).all()  # the best gap weighs most
    assert ess_fraction_of(torch.zeros(1, 5)).item() == pytest.approx(1.0)


def test_ess_rule_gives_the_same_weights_when_every_gap_is_100_times_larger():
    g = torch.Generator().manual_seed(1)
    gap = torch.randn(2, 256, generator=g) - 0.5
    torch.testing.assert_close(ess_weights(SCALE * gap, 0.3, 50.0), ess_weights(gap, 0.3, 50.0), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1e2, 1e6])
def test_ess_rule_gives_the_same_weights_at_any_gap_scale_not_only_inside_its_search_bracket(scale):
    """The temperature is searched as u = λ·std(g) in a fixed bracket: gaps of any scale need the same u."""
    g = torch.Generator().manual_seed(2)
    gap = torch.randn(2, 256, generator=g) + 0.2
    torch.testing.assert_close(ess_weights(scale * gap, 0.5, 50.0), ess_weights(gap, 0.5, 50.0), rtol=1e-4,
                               atol=1e-6)


def test_ess_rule_clips_at_c():
    gap = torch.tensor([[10.0] + [0.0] * 99])  # one outstanding gap: at ESS/n = 0.02 it carries ~ √(n/f) = 70
    assert ess_weights(gap, 0.02, 50.0).max().item() == 50.0


# -- in the agent ------------------------------------------------------------------------------------------------
def agent_and_batch(rule: str, scale: float = 1.0) -> tuple[LOMAgent, object]:
    """A fresh agent (the same for every `scale`) whose critic's output layers are multiplied by `scale`: its Q and
    V, hence every gap Q(s, a*) − V(s), are `scale` times those of the unscaled critic, as after training on
    rewards × `scale`."""
    torch.manual_seed(0)
    agent = LOMAgent(3, 2, lom_config(num_components=2, weight_rule=rule, beta=2.0, weight_clip=50.0))
    with torch.no_grad():
        for net in (agent.critic.q, agent.critic.q_target, agent.critic.v):
            params = dict(net.named_parameters())
            last = max(int(re.search(r"layers\.(\d+)\.", name)[1]) for name in params)
            for name, p in params.items():
                if f"layers.{last}." in name:
                    p.mul_(scale)
    obs = torch.randn(256, 3, generator=torch.Generator().manual_seed(1))
    t = make_transitions(obs.numpy(), np.zeros((256, 2)))
    batch = DeviceDataset(t, ObservationNormalizer.fit(t.observations, False), torch.device("cpu")).sample(
        agent.rng, 256)
    a_star = torch.rand(1, 256, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1
    agent.best_mode_action = lambda batch: (a_star, torch.zeros(1, 256, dtype=torch.bool))
    return agent, batch


@pytest.mark.parametrize("rule, scale_free", [("fixed", False), ("rms", True), ("ess", True)])
def test_an_actor_update_on_rewards_100_times_larger_is_the_same_under_the_scale_free_rules(rule, scale_free):
    results = []
    for scale in (1.0, SCALE):
        agent, batch = agent_and_batch(rule, scale)
        losses = [agent.update_actor(batch) for _ in range(3)]  # rms: its running mean over three batches
        results.append((losses[0]["actor/q_gap"], torch.stack([lo["actor/loss"] for lo in losses]),
                        agent.actor.state_dict()))
    (gap, loss, actor), (gap_scaled, loss_scaled, actor_scaled) = results
    assert (gap_scaled / gap).item() == pytest.approx(SCALE, rel=1e-4)  # the gaps did grow 100-fold
    if scale_free:
        torch.testing.assert_close(loss_scaled, loss, rtol=1e-4, atol=1e-7)
        for name in actor:
            torch.testing.assert_close(actor_scaled[name], actor[name], rtol=1e-4, atol=1e-6)
    else:
        assert not torch.allclose(loss_scaled, loss, rtol=1e-2)


def test_the_rms_state_is_saved_per_seed_with_the_agent_and_other_rules_add_nothing():
    cfg = lom_config(num_components=2, weight_rule="rms")
    agent = LOMAgent(3, 2, cfg, seeds=(0, 1))
    agent.weight_rule(torch.tensor([[1.0, -1.0], [3.0, 3.0]]))
    state = agent.state_dict()
    torch.testing.assert_close(state["weight_rule.mean_square"], torch.tensor([1.0, 9.0]))
    assert state["weight_rule.batches"].item() == 1
    # Each seed's checkpoint holds its own slice; stacked back, the state loads into a fresh agent bit for bit.
    slices = [slice_seed(state, i) for i in (0, 1)]
    assert slices[1]["weight_rule.mean_square"].tolist() == [9.0]
    fresh = LOMAgent(3, 2, cfg, seeds=(0, 1))
    fresh.load_state_dict(stack_seeds(slices))
    assert torch.equal(fresh.weight_rule.mean_square, agent.weight_rule.mean_square)
    assert torch.equal(fresh.weight_rule.batches, agent.weight_rule.batches)
    for rule in ("fixed", "ess"):  # no state: checkpoints of runs made before the rules existed still load
        other = LOMAgent(3, 2, dataclasses.replace(cfg, weight_rule=rule))
        assert not [k for k in other.state_dict() if k.startswith("weight_rule")]


def test_each_rule_has_its_module_and_one_number():
    cfg = lom_config(num_components=2, beta=0.3, rms_beta=0.7, ess_fraction=0.2, weight_clip=9.0)
    kinds = {"fixed": FixedWeight, "rms": RunningRMSWeight, "ess": EffectiveSampleSizeWeight}
    numbers = {"fixed": "beta", "rms": "beta", "ess": "fraction"}
    assert set(kinds) == set(WEIGHT_RULES) == set(WEIGHT_RULE_NUMBERS)
    for rule in WEIGHT_RULES:
        module = make_weight_rule(dataclasses.replace(cfg, weight_rule=rule), seeds=2)
        assert isinstance(module, kinds[rule]) and module.clip == 9.0
        assert getattr(module, numbers[rule]) == getattr(cfg, WEIGHT_RULE_NUMBERS[rule])
    with pytest.raises(LOMError, match="--weight_rule None is unknown"):  # an unresolved config is refused
        make_weight_rule(dataclasses.replace(cfg, weight_rule=None), seeds=1)


def test_the_default_rule_is_fixed_under_both_presets_and_bad_values_are_refused_in_one_line():
    for preset in ("lom", "paper"):
        assert TrainConfig(preset=preset).resolve("hopper-medium-v2").weight_rule == "fixed"
    assert TrainConfig(weight_rule="ess").resolve("hopper-medium-v2").weight_rule == "ess"
    for flags, message in ((dict(weight_rule="kl"), "--weight_rule 'kl' is unknown: choose one of fixed, rms, ess"),
                           (dict(ess_fraction=1.0), "--ess_fraction must lie in (0, 1), got 1.0"),
                           (dict(rms_beta=-1.0), "--rms_beta must not be negative, got -1.0")):
        with pytest.raises(LOMError, match=re.escape(message)):
            TrainConfig(**flags).resolve("hopper-medium-v2").validate()
