"""Geometry and dynamics of the multimodal fork: a point mass that must pass a wall through one of three gaps.

Everything here is vectorised numpy over a leading batch axis, so the gymnasium env (batch of one), the dataset
generator and the reference-score measurements all share one definition of the task.
"""

from __future__ import annotations

import numpy as np

STEP = 0.5  # distance moved per unit of action on each axis
MAX_EPISODE_STEPS = 40
START_JITTER = 0.25  # start position is uniform in [-START_JITTER, START_JITTER]^2

WALL_LOW = 4.0  # the wall fills the band WALL_LOW <= y <= WALL_HIGH across the whole arena
WALL_HIGH = 5.0
GAP_X = np.array([-4.0, 3.0, 7.0])  # gap centres; the best gap is the leftmost, so averaging pulls into the wall
GAP_HALF_WIDTH = 0.6
GAP_REWARDS = np.array([1.0, 0.5, 0.25])  # scale ~1 so exp(3 * advantage) cannot single out the best gap

X_LIMITS = (-10.0, 10.0)
Y_LIMITS = (-3.0, WALL_HIGH + STEP)  # an episode ends once y reaches WALL_HIGH, so this top is never exceeded


def reset_positions(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) float64 start positions near the origin."""
    return rng.uniform(-START_JITTER, START_JITTER, size=(n, 2))


def wall_pieces() -> np.ndarray:
    """(pieces, 2) x-intervals of the wall between the gaps; each spans WALL_LOW <= y <= WALL_HIGH."""
    gap_edges = np.c_[GAP_X - GAP_HALF_WIDTH, GAP_X + GAP_HALF_WIDTH].ravel()
    return np.concatenate([[X_LIMITS[0]], gap_edges, [X_LIMITS[1]]]).reshape(-1, 2)


def _axis_window(start: np.ndarray, delta: np.ndarray, low: np.ndarray, high: np.ndarray):
    """Fractions t (enter, leave) during which start + t * delta lies within [low, high] on one axis.

    start, delta: (n, 1); low, high: (pieces,). A segment parallel to the axis is inside always or never.
    """
    flat = np.abs(delta) < 1e-12
    safe = np.where(flat, 1.0, delta)
    t_low, t_high = (low - start) / safe, (high - start) / safe
    inside = (start >= low) & (start <= high)
    enter = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(t_low, t_high))
    leave = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(t_low, t_high))
    return enter, leave


def _first_wall_contact(start: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Fraction of each segment start + t * delta (t in [0, 1]) at which it first touches the wall; inf if never."""
    pieces = wall_pieces()
    x_enter, x_leave = _axis_window(start[:, :1], delta[:, :1], pieces[:, 0], pieces[:, 1])
    y_enter, y_leave = _axis_window(start[:, 1:], delta[:, 1:], np.array([WALL_LOW]), np.array([WALL_HIGH]))
    enter = np.maximum(np.maximum(x_enter, y_enter), 0.0)
    leave = np.minimum(np.minimum(x_leave, y_leave), 1.0)
    return np.where(enter <= leave, enter, np.inf).min(axis=1)


def move(positions: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for a batch: returns (next_positions, rewards, terminated).

    A step that touches the wall stops there and ends the episode with reward 0; a step that reaches
    y >= WALL_HIGH (necessarily through a gap) ends it with the reward of the gap it left by. Every other step
    pays 0.
    """
    actions = np.clip(actions, -1.0, 1.0)
    target = positions + STEP * actions
    target[:, 0] = np.clip(target[:, 0], *X_LIMITS)
    target[:, 1] = np.clip(target[:, 1], *Y_LIMITS)
    delta = target - positions
    contact = _first_wall_contact(positions, delta)
    crashed = np.isfinite(contact)
    next_positions = np.where(crashed[:, None], positions + np.where(crashed, contact, 0.0)[:, None] * delta, target)
    passed = ~crashed & (positions[:, 1] < WALL_HIGH) & (next_positions[:, 1] >= WALL_HIGH)
    # Where the step crosses the top of the wall tells which gap it used.
    t_top = np.clip((WALL_HIGH - positions[:, 1]) / np.where(passed, delta[:, 1], 1.0), 0.0, 1.0)
    x_top = positions[:, 0] + t_top * delta[:, 0]
    gap = np.abs(x_top[:, None] - GAP_X).argmin(axis=1)
    rewards = np.where(passed, GAP_REWARDS[gap], 0.0)
    return next_positions, rewards, crashed | passed
