"""Turn D4RL-layout rows into (s, a, r, s', a', done) transitions that never cross an episode boundary."""

from __future__ import annotations

import numpy as np

from lom.data.types import Transitions
from lom.errors import LOMError

# next_observations[i] and observations[i + 1] are copies of one float32 value when both rows are in one episode.
_SAME_STATE_RTOL = 1e-5
_SAME_STATE_ATOL = 1e-6


def build_transitions(arrays: dict[str, np.ndarray], max_episode_steps: int | None, source: str) -> Transitions:
    """Pair each row with the next one, like d4rl's qlearning_dataset, but never across episodes.

    Rows flagged `timeouts` are dropped (their next row starts a new episode), as is the final row unless it is
    terminal. Terminal rows take next_observations[i] (or observations[i + 1]) and their own action as s', a': both
    are masked by the done flag. A non-terminal row whose next_observations[i] differs from observations[i + 1] is
    an unflagged episode boundary; its next action is unknown, so it is dropped.
    """
    obs, actions, terminals = arrays["observations"], arrays["actions"], arrays["terminals"]
    n = len(obs)
    timeouts = (
        arrays["timeouts"] if "timeouts" in arrays else _timeouts_from_length(terminals, max_episode_steps, source)
    )
    has_next = np.append(np.ones(n - 1, dtype=bool), False)  # row i + 1 exists
    continues = has_next & ~terminals & ~timeouts
    if "next_observations" in arrays:
        continues[:-1] &= _same_states(arrays["next_observations"][:-1], obs[1:])
    keep = continues | (terminals & ~timeouts)
    if not keep.any():
        raise LOMError(f"{source}: no row has a next step in its own episode — check 'terminals' and 'timeouts'")

    rows = np.flatnonzero(keep)
    following = np.minimum(rows + 1, n - 1)
    ends = terminals[rows]
    if "next_observations" in arrays:
        next_obs = np.where(ends[:, None], arrays["next_observations"][rows], obs[following])
    else:
        next_obs = obs[following]
    next_actions = np.where(ends[:, None], actions[rows], actions[following])
    return Transitions(
        observations=obs[rows],
        actions=actions[rows],
        rewards=arrays["rewards"][rows].astype(np.float32, copy=False),
        next_observations=next_obs.astype(np.float32, copy=False),
        next_actions=next_actions.astype(np.float32, copy=False),
        terminals=ends.astype(np.float32),
    )


def _same_states(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.abs(a - b) <= _SAME_STATE_ATOL + _SAME_STATE_RTOL * np.abs(b)).all(axis=1)


def _timeouts_from_length(terminals: np.ndarray, max_episode_steps: int | None, source: str) -> np.ndarray:
    """Without a `timeouts` key, like d4rl: an episode is cut after max_episode_steps rows unless it terminated."""
    if not max_episode_steps:
        raise LOMError(
            f"{source}: missing key 'timeouts' and the episode length is unknown — add 'timeouts' to the file"
        )
    index = np.arange(len(terminals))
    # Each row's episode starts after the latest terminal before it.
    starts = np.maximum.accumulate(np.where(np.append(False, terminals[:-1]), index, 0))
    return (index - starts) % max_episode_steps == max_episode_steps - 1


def episode_returns(transitions: Transitions) -> np.ndarray:
    """The undiscounted return of every episode in the transitions, a cut last one included.

    An episode ends at a terminal row or where the next row does not continue it (its s' is not the next row's s).
    """
    ends = transitions.terminals.astype(bool)
    ends[:-1] |= ~_same_states(transitions.next_observations[:-1], transitions.observations[1:])
    ends[-1] = True
    totals = np.cumsum(transitions.rewards, dtype=np.float64)[ends]
    return np.diff(totals, prepend=0.0)


def return_range_scale(transitions: Transitions, target: float) -> float:
    """target / (highest − lowest episode return): IQL's reward scale for locomotion datasets."""
    returns = episode_returns(transitions)
    spread = float(returns.max() - returns.min())
    if not spread > 0:
        raise LOMError(f"cannot scale rewards by the episode-return range: the dataset's {len(returns)} episode(s) "
                       "all return the same; use --reward_scaling none")
    return target / spread
