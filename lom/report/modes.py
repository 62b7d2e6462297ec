"""Which mixture component a trained LOM run imitates: `python -m lom.report --modes RUN_DIR` writes RUN_DIR/modes.png.

On multimodal-fork-v0 the figure shows the state space (states coloured by the selected component k*(s), the actor's
actions, its rollout from the start) and the mixture in action space at a few states. On any other dataset it
compares, over dataset states, how often each component is selected with how often it is the heaviest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch
from matplotlib.ticker import PercentFormatter
from tqdm import tqdm

from lom.agents.lom import LOMAgent
from lom.data import load_transitions
from lom.errors import LOMError
from lom.evaluate import LoadedRun, load_run
from lom.fork import behaviour, dataset as fork_dataset, world
from lom.fork.plot import draw_arena
from lom.io import atomic_path

FIGURE_NAME = "modes.png"
MAX_HISTOGRAM_STATES = 100_000
CHUNK = 8192  # states per forward pass
GRID_CELL = 0.25  # side of the state-space cells coloured by k*(s)
ARROW_EVERY = 4  # draw the actor's action at every ARROW_EVERY-th cell on each axis
NEAR_RADIUS = 0.4  # dataset actions drawn for a state come from dataset states this close to it
MAX_NEAR_ACTIONS = 400
ARENA_XLIM = (-7.0, 9.5)
ARENA_YLIM = (-1.5, world.WALL_HIGH + 2.0)
SELECTED_EDGE = "black"
DATA_GREY = "#8c8c8c"
REGION_ALPHA = 0.4
ARROW_LENGTH = 0.9  # arrow length per unit of action, in state units (a step itself moves world.STEP per unit)
# tab10 with green, orange and purple last: the arena's gap labels already use those hues.
COMPONENT_PALETTE = [0, 3, 9, 8, 6, 5, 1, 2, 4, 7]


@dataclass
class MixtureReadout:
    """What the run's networks say at a batch of raw states: the mixture (means, stds, weights: (B, N, A), (B, N, A),
    (B, N)), the mode values (B, N), the selected component k*(s) and the heaviest component (B,), the actor's action
    (B, A)."""

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    mode_values: np.ndarray
    selected: np.ndarray
    heaviest: np.ndarray
    actions: np.ndarray


def write_modes_figure(run_dir: str | Path) -> Path:
    """Draw the run's modes into RUN_DIR/modes.png and return that path."""
    run = load_run(run_dir, device="cpu")
    if not isinstance(run.agent, LOMAgent):
        raise LOMError(f"--modes needs a LOM run: {run.run_dir} trained {run.config.agent} — pass the folder of a "
                       "run trained with --agent LOM")
    transitions = load_transitions(run.spec)
    if run.spec.name == fork_dataset.DATASET_NAME:
        fig = fork_figure(run, transitions.observations, transitions.actions)
    else:
        fig = selection_figure(run, sample_states(transitions.observations, MAX_HISTOGRAM_STATES))
    out = run.run_dir / FIGURE_NAME
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return out


@torch.no_grad()
def read_mixture(run: LoadedRun, states: np.ndarray, progress: bool = False) -> MixtureReadout:
    """Evaluate the mixture, mode values, selection and actor at raw `states` (N, obs_dim), in chunks."""
    agent: LOMAgent = run.agent
    parts = []
    chunks = range(0, len(states), CHUNK)
    for start in tqdm(chunks, desc="reading the mixture", unit="chunk", disable=not progress, leave=False):
        obs = run.normalizer(torch.as_tensor(states[start : start + CHUNK], dtype=torch.float32)).unsqueeze(0)
        means, stds, log_weights = agent.gmm(obs)  # a run folder's agent has one seed: (1, B, ...) outputs
        row = (means, stds, log_weights.exp(), agent.mode_value(obs), agent.best_component(obs, log_weights),
               log_weights.argmax(dim=-1), agent.actor(obs))
        parts.append(tuple(part[0] for part in row))
    return MixtureReadout(*(torch.cat(column).numpy() for column in zip(*parts)))


def sample_states(observations: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """At most `limit` rows, drawn without replacement (all of them when there are fewer)."""
    if len(observations) <= limit:
        return observations
    rows = np.random.default_rng(seed).choice(len(observations), size=limit, replace=False)
    return observations[np.sort(rows)]


def component_colours(n: int) -> list:
    if n <= len(COMPONENT_PALETTE):
        return [colormaps["tab10"](i) for i in COMPONENT_PALETTE[:n]]
    return [colormaps["turbo"].resampled(n)(k) for k in range(n)]


# -- any dataset: how often each component is selected ---------------------------------------------------------------
def selection_figure(run: LoadedRun, states: np.ndarray) -> Figure:
    """Bar charts over `states`: share of states where component k is selected, and where it is the heaviest."""
    readout = read_mixture(run, states, progress=True)
    n = run.config.num_components
    colours = component_colours(n)
    selected_share = np.bincount(readout.selected, minlength=n) / len(states)
    heaviest_share = np.bincount(readout.heaviest, minlength=n) / len(states)
    agree = np.mean(readout.selected == readout.heaviest)
    selected_weight = np.take_along_axis(readout.weights, readout.selected[:, None], axis=1)[:, 0]

    fig = Figure(figsize=(11, 4.4), dpi=130)
    left, right = fig.subplots(1, 2, sharey=True)
    components = np.arange(n)
    for ax, share, title in (
        (left, selected_share, "selected component k*(s) = argmax$_k$ Q$_{mode}$(s, k)\n(the one LOM imitates)"),
        (right, heaviest_share, "heaviest component argmax$_k$ w$_k$(s)\n(the dominant behaviour mode)"),
    ):
        bars = ax.bar(components, share, color=colours, edgecolor="black", linewidth=0.6)
        ax.bar_label(bars, labels=[f"{s:.0%}" for s in share], fontsize=8, padding=2)
        ax.set(xticks=components, xlabel="mixture component k", title=title)
        ax.title.set_fontsize(10)
        ax.spines[["top", "right"]].set_visible(False)
    left.set_ylabel(f"share of {len(states):,} dataset states")
    left.yaxis.set_major_formatter(PercentFormatter(1.0))
    left.set_ylim(0, max(selected_share.max(), heaviest_share.max()) * 1.15)
    fig.suptitle(f"{run.spec.name}, {run.config.agent} seed {run.config.seed}: LOM imitates the heaviest component at "
                 f"{agree:.0%} of states; median weight of the imitated component {np.median(selected_weight):.2f}",
                 fontsize=11)
    fig.tight_layout()
    return fig


# -- multimodal-fork-v0: the state space and the mixture at a few states --------------------------------------------
def fork_figure(run: LoadedRun, dataset_states: np.ndarray, dataset_actions: np.ndarray) -> Figure:
    colours = component_colours(run.config.num_components)
    probes = probe_states()
    fig = Figure(figsize=(15, 11), dpi=120)
    grid = GridSpec(2, len(probes), figure=fig, height_ratios=[1.6, 1], hspace=0.25, wspace=0.35)
    arena = fig.add_subplot(grid[0, :])
    path, reward, ended = policy_rollout(run, np.zeros(2))
    draw_state_space(arena, run, colours, path, rollout_outcome(reward, ended), reward > 0, probes)
    readout = read_mixture(run, np.array([state for _, state in probes]))
    for i, (label, state) in enumerate(probes):
        ax = fig.add_subplot(grid[1, i])
        near = np.linalg.norm(dataset_states - state, axis=1) <= NEAR_RADIUS
        draw_action_space(ax, readout, i, colours, dataset_actions[near], run.config.min_component_weight)
        ax.set_title(f"{label}, s = ({state[0]:.1f}, {state[1]:.1f})\n{near.sum():,} dataset states within "
                     f"{NEAR_RADIUS:g}", fontsize=9)
    fig.legend(handles=action_legend_handles(), loc="lower center", bbox_to_anchor=(0.5, -0.06), ncol=3, fontsize=8.5,
               frameon=False, title="bottom row: the mixture π_β(a|s) in action space", title_fontsize=9)
    fig.suptitle(f"{fork_dataset.DATASET_NAME}, {run.config.agent} seed {run.config.seed}: which behaviour mode the policy "
                 "imitates", fontsize=13, y=0.93)
    return fig


def probe_states() -> list[tuple[str, np.ndarray]]:
    """The start state, where all three behaviour modes meet, and a state halfway along each mode's approach."""
    halfway = [np.array([x / 2, behaviour.APPROACH_Y / 2]) for x in world.GAP_X]
    names = ["A: start", *(f"{letter}: on the way to gap {k}" for k, letter in enumerate("BCD"))]
    return list(zip(names, [np.zeros(2), *halfway]))


def policy_rollout(run: LoadedRun, start: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Positions the deterministic policy visits from `start` in the fork, the reward it collects, and whether the
    episode ended (through a gap or against the wall) before the time limit."""
    positions, path, reward = start[None].astype(np.float64), [start], 0.0
    for _ in range(world.MAX_EPISODE_STEPS):
        with torch.no_grad():
            action = run.agent.act_single(run.normalizer(torch.as_tensor(positions, dtype=torch.float32)))
        positions, rewards, done = world.move(positions, action.numpy().astype(np.float64))
        path.append(positions[0])
        reward += float(rewards[0])
        if done[0]:
            return np.array(path), reward, True
    return np.array(path), reward, False


def rollout_outcome(reward: float, ended: bool) -> str:
    if reward > 0:
        return f"passes a gap, reward {reward:g}"
    if ended:
        return "hits the wall, reward 0"
    return f"still below the wall after {world.MAX_EPISODE_STEPS} steps, reward 0"


def draw_state_space(ax: Axes, run: LoadedRun, colours: list, path: np.ndarray, outcome: str, passed: bool,
                     probes: list[tuple[str, np.ndarray]]) -> None:
    """States below the wall coloured by k*(s), the actor's actions as arrows, its rollout from the start."""
    x_edges = np.arange(ARENA_XLIM[0], ARENA_XLIM[1] + 1e-9, GRID_CELL)
    y_edges = np.arange(ARENA_YLIM[0], world.WALL_LOW + 1e-9, GRID_CELL)
    xs, ys = np.meshgrid((x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2)
    readout = read_mixture(run, np.c_[xs.ravel(), ys.ravel()])
    n = len(colours)
    ax.pcolormesh(x_edges, y_edges, readout.selected.reshape(xs.shape), cmap=ListedColormap(colours), vmin=-0.5,
                  vmax=n - 0.5, alpha=REGION_ALPHA, shading="flat", zorder=1)
    draw_arena(ax)
    actions = readout.actions.reshape(*xs.shape, -1)
    every = (slice(ARROW_EVERY // 2, None, ARROW_EVERY),) * 2
    ax.quiver(xs[every], ys[every], actions[every][..., 0], actions[every][..., 1], angles="xy", scale_units="xy",
              scale=1 / ARROW_LENGTH, width=0.002, color="#222222", zorder=4)
    ax.plot(*path.T, color="black", lw=2.4, marker="o", ms=3, zorder=6)
    end = dict(marker="*", ms=16, color="gold") if passed else dict(marker="X", ms=12, color="crimson")
    ax.plot(*path[-1], mec="black", zorder=7, **end)
    for label, state in probes:
        ax.plot(*state, marker="s", ms=8, mfc="white", mec="black", zorder=8)
        ax.annotate(label[0], state, xytext=(6, -13), textcoords="offset points", fontsize=8, fontweight="bold",
                    zorder=8, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    handles = [Patch(color=c, alpha=REGION_ALPHA + 0.1, label=f"k*(s) = {k}") for k, c in enumerate(colours)]
    handles += [
        Line2D([], [], color="#222222", marker=r"$\rightarrow$", ms=14, lw=0,
               label=f"actor π(s)\n(length {ARROW_LENGTH:g} per unit of action)"),
        Line2D([], [], color="black", lw=2.4, label=f"π's rollout from the start:\n{outcome}"),
        Line2D([], [], lw=0, mec="black", label="where it ends", **end),
        Line2D([], [], color="black", marker="s", mfc="white", lw=0, ms=8, label="states A-D of the bottom row"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False,
              title="selected component", title_fontsize=9, alignment="left")
    ax.set(xlim=ARENA_XLIM, ylim=ARENA_YLIM, aspect="equal", xlabel="x", ylabel="y")
    ax.set_title("state space: the component LOM imitates at each state, k*(s) (colour), and the actor's action "
                 "(arrows)", fontsize=10)


def draw_action_space(ax: Axes, readout: MixtureReadout, row: int, colours: list, data_actions: np.ndarray,
                      min_weight: float) -> None:
    """The mixture at one state in action space: 1-σ ellipses, means sized by weight, k* outlined in black."""
    shown = data_actions[np.random.default_rng(0).permutation(len(data_actions))[:MAX_NEAR_ACTIONS]]
    ax.scatter(*shown.T, s=5, color=DATA_GREY, alpha=0.6, lw=0, zorder=1)
    selected = readout.selected[row]
    handles = []
    for k, colour in enumerate(colours):
        mean, std, weight = readout.means[row, k], readout.stds[row, k], readout.weights[row, k]
        is_selected = k == selected
        edge = SELECTED_EDGE if is_selected else colour
        ax.add_patch(Ellipse(mean, 2 * std[0], 2 * std[1], fc=(*colour[:3], 0.15), ec=edge,
                             lw=2.2 if is_selected else 1.0, ls="--" if weight < min_weight else "-",
                             zorder=2 + is_selected))
        ax.scatter(*mean, s=15 + 400 * weight, color=colour, ec=SELECTED_EDGE if is_selected else "white",
                   lw=1.8 if is_selected else 0.6, zorder=4 + is_selected)
        label = f"{k}: w {weight:.2f}, Q$_{{mode}}$ {readout.mode_values[row, k]:+.2f}" + ("  ← k*" if is_selected else "")
        handles.append(Line2D([], [], color=colour, marker="o", lw=0, ms=6, mec=edge, label=label))
    ax.plot(*readout.actions[row], marker="X", ms=11, color="black", mec="white", zorder=7)
    ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal")
    ax.set_xlabel("action x", fontsize=8)
    ax.set_ylabel("action y", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7.5, frameon=False,
              ncol=1 if len(handles) <= 6 else 2, handletextpad=0.2)


def action_legend_handles() -> list[Line2D]:
    return [
        Line2D([], [], color=DATA_GREY, marker="o", lw=0, ms=4, label="dataset actions taken near s"),
        Line2D([], [], color="tab:blue", marker="o", lw=1, ms=7, mec="white",
               label="component k: mean (area ∝ weight w$_k$(s)), 1-σ ellipse"),
        Line2D([], [], color="tab:blue", marker="o", mec=SELECTED_EDGE, lw=0, ms=7, mew=1.8,
               label="selected k*(s) = argmax$_k$ Q$_{mode}$(s, k) (black outline)"),
        Line2D([], [], color="tab:blue", ls="--", lw=1, label="weight below min_component_weight: not a candidate"),
        Line2D([], [], color="black", marker="X", mec="white", lw=0, ms=9, label="actor π(s)"),
    ]
