"""Draw the multimodal fork benchmark and its dataset: `python -m lom.fork.plot [--out docs/fork_dataset.png]`."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from lom.cli import OneLineParser
from lom.errors import run_cli, writing
from lom.fork import behaviour, dataset as fork_dataset, world
from lom.io import atomic_path

MODE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3")
RANDOM_COLOUR = "#b0b0b0"
WALL_COLOUR = "#3b3b3b"


def split_episodes(path: Path) -> list[tuple[np.ndarray, int]]:
    """(positions visited, mode) for every episode of the dataset file, in order."""
    with h5py.File(path, "r") as f:
        obs, next_obs = f["observations"][:], f["next_observations"][:]
        ends = np.flatnonzero(f["terminals"][:] | f["timeouts"][:])
        modes = f["infos/mode"][:]
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [(np.vstack([obs[s : e + 1], next_obs[e]]), int(modes[s])) for s, e in zip(starts, ends)]


def mean_of_modes_path(start: np.ndarray) -> np.ndarray:
    """Positions visited by the equal-weight average of the three modes from `start` (noise-free)."""
    policy = behaviour.mean_of_modes_policy()
    positions, path = start[None].astype(np.float64), [start]
    for _ in range(world.MAX_EPISODE_STEPS):
        positions, _, done = world.move(positions, policy(positions))
        path.append(positions[0])
        if done[0]:
            break
    return np.array(path)


def draw_arena(ax: Axes) -> None:
    height = world.WALL_HIGH - world.WALL_LOW
    for left, right in world.wall_pieces():
        ax.add_patch(Rectangle((left, world.WALL_LOW), right - left, height, color=WALL_COLOUR, zorder=3))
    ax.axhspan(world.WALL_HIGH, world.WALL_HIGH + 2, color="#fff3c4", zorder=0)
    ax.text(-0.5, world.WALL_HIGH + 1.0, "goal: get past the wall", ha="center", va="center", fontsize=10,
            style="italic")
    for k, (x, reward) in enumerate(zip(world.GAP_X, world.GAP_REWARDS)):
        ax.text(x, world.WALL_HIGH + 0.75, f"gap {k}\nreward {reward:g}", ha="center", va="bottom", fontsize=9,
                fontweight="bold", color=MODE_COLOURS[k], zorder=4)
    start_box = Rectangle((-world.START_JITTER,) * 2, 2 * world.START_JITTER, 2 * world.START_JITTER,
                          fill=False, ls=":", lw=1.2, zorder=4)
    ax.add_patch(start_box)
    ax.text(0, -world.START_JITTER - 0.2, "start", ha="center", va="top", fontsize=9)


def draw_episodes(ax: Axes, episodes: list[tuple[np.ndarray, int]], per_mode: int) -> None:
    """The first `per_mode` episodes of each mode (a quarter as many random ones, which only add clutter)."""
    shown = dict.fromkeys([*range(len(world.GAP_X)), behaviour.RANDOM_MODE], 0)
    for positions, mode in episodes:
        is_random = mode == behaviour.RANDOM_MODE
        if shown[mode] >= (per_mode // 4 if is_random else per_mode):
            continue
        shown[mode] += 1
        colour = RANDOM_COLOUR if is_random else MODE_COLOURS[mode]
        ax.plot(*positions.T, color=colour, lw=0.8, alpha=0.55, zorder=2)


def draw_mean_of_modes(ax: Axes) -> None:
    path = mean_of_modes_path(np.zeros(2))
    ax.plot(*path.T, color="black", ls="--", lw=2, zorder=5)
    ax.plot(*path[-1], marker="X", color="crimson", ms=12, zorder=6)


def legend_handles(mode_returns: np.ndarray) -> list[Line2D]:
    handles = [
        Line2D([], [], color=MODE_COLOURS[k], lw=2,
               label=f"mode {k}: gap x={x:g}, {behaviour.MODE_PROBS[k]:.0%} of episodes, return {r:.2f}")
        for k, (x, r) in enumerate(zip(world.GAP_X, mode_returns))
    ]
    random_label = f"random actions ({behaviour.RANDOM_EPISODE_FRACTION:.0%}), return ~0"
    handles.append(Line2D([], [], color=RANDOM_COLOUR, lw=2, label=random_label))
    handles.append(Line2D([], [], color="black", ls="--", marker="X", mfc="crimson", mec="crimson", ms=9, lw=2,
                          label="average of the three modes: hits the wall, return 0"))
    return handles


def plot(out: Path, seed: int, episodes_per_mode: int) -> None:
    path = fork_dataset.fork_dataset_path(seed)
    with h5py.File(path, "r") as f:
        mode_returns = f["metadata/mode_returns"][:]
    fig = Figure(figsize=(9, 4.6), dpi=150)  # no pyplot: works without a display and leaks no global figures
    ax = fig.subplots()
    draw_arena(ax)
    draw_episodes(ax, split_episodes(path), episodes_per_mode)
    draw_mean_of_modes(ax)
    ax.legend(handles=legend_handles(mode_returns), loc="lower right", fontsize=8, framealpha=0.92, edgecolor="none")
    ax.set(xlim=(-7, 10), ylim=(-1.3, world.WALL_HIGH + 2), aspect="equal", xlabel="x", ylabel="y",
           title=f"{fork_dataset.DATASET_NAME}: three ways past the wall (dataset seed {seed})")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m lom.fork.plot", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/fork_dataset.png"), help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--episodes-per-mode", type=int, default=40, help="trajectories drawn per mode")
    args = parser.parse_args(argv)
    with writing(str(args.out), "choose a writable --out path"):
        plot(args.out, args.seed, args.episodes_per_mode)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
