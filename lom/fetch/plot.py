"""Mode plots of the Fetch tasks.

`python -m lom.fetch.plot NAME [--out FILE]`: the dataset's episodes seen from above the table — the path of the
scored point (the gripper in Reach, the block in Push and PickAndPlace) coloured by the demonstrator that made it,
the goal zones with their worth, each mode's share and mean return (default FILE: docs/<task>_dataset.png).

`python -m lom.fetch.plot --agents PATH [PATH ...] [--episodes N] [--out FILE] [--table MD]`: run N evaluation
episodes of every trained run under the PATHs (run folders, or folders holding them such as a study's), tell which
zone each episode went for, print the shares per agent (and write them to MD) and draw them as one stacked bar per
agent (default FILE: <first PATH>/fetch_strategies.png). Torch loads only for this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle
from matplotlib.ticker import PercentFormatter

from lom.cli import OneLineParser
from lom.errors import LOMError, run_cli, writing
from lom.fetch import behaviour, dataset as fetch_dataset, strategies, world
from lom.fetch.modes import mode_table
from lom.fork.plot import MODE_COLOURS, split_episodes
from lom.io import atomic_path

NONE_COLOUR = "#b0b0b0"  # episodes that went for no zone
TABLE_COLOUR = "#f3ead9"
# The table's top in world coordinates (x away from the robot, y to its left), as FetchTask's comment gives it.
TABLE_X = (1.05, 1.55)
TABLE_Y = (0.40, 1.10)
GRIPPER_START_X = 1.342  # Reach's gripper start along x (lom.fetch.world's comment on TASKS)
MEAN_OF_MODES_SEED = 50  # the reset seed of the drawn average-of-the-modes episode (tests/test_fetch.py's)
STRATEGIES_FIGURE = "fetch_strategies.png"


def default_dataset_figure(name: str) -> Path:
    """docs/fetch_push_dataset.png for fetch-push-multimodal-v0, and so on."""
    return Path("docs") / f"{name.removesuffix('-multimodal-v0').replace('-', '_')}_dataset.png"


def mode_colour(zone: int) -> str:
    return NONE_COLOUR if zone == world.NO_ZONE else MODE_COLOURS[zone]


def zone_height_note(task: world.FetchTask) -> str:
    """How far above the table the zones float (PickAndPlace's are in the air), '' when they sit on it."""
    height = task.zone_array[0, 2] - world.TABLE_Z
    return f", {height * 100:.0f} cm above the table" if task.block_start is not None and height > 0.01 else ""


def draw_table(ax: Axes, task: world.FetchTask) -> None:
    """The table's top seen from above, robot at the bottom: x (away from the robot) up, y (to the robot's left)
    leftwards, so that 'left' and 'right' in the zones' names are left and right in the figure; the zones with
    their worth."""
    ax.add_patch(Rectangle((TABLE_Y[0], TABLE_X[0]), np.diff(TABLE_Y)[0], np.diff(TABLE_X)[0], color=TABLE_COLOUR,
                           zorder=0))
    ax.text(0.5, 0.01, "the robot stands this side", transform=ax.transAxes, ha="center", va="bottom",
            fontsize=8, style="italic", color="#6b6b6b")
    for k, (zone, worth, name) in enumerate(zip(task.zone_array, task.worths, task.mode_names)):
        ax.add_patch(Circle((zone[1], zone[0]), world.ZONE_RADIUS, fc=(*_rgb(MODE_COLOURS[k]), 0.18),
                            ec=MODE_COLOURS[k], lw=1.8, zorder=4))
        above = zone[0] >= start_x(task)  # the label on the zone's far side from the start, clear of the paths
        ax.text(zone[1], zone[0] + (1 if above else -1) * (world.ZONE_RADIUS + 0.01), f"zone {k} ({name})\nworth "
                f"{worth:g}", ha="center", va="bottom" if above else "top", fontsize=8.5, fontweight="bold",
                color=MODE_COLOURS[k], zorder=6, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none",
                                                           alpha=0.75))
    if task.block_start is not None:
        half = 0.025  # the block is 5 cm wide
        x, y = task.block_start
        ax.add_patch(Rectangle((y - half, x - half), 2 * half, 2 * half, fill=False, ls=":", lw=1.2, zorder=5))


def start_x(task: world.FetchTask) -> float:
    """Where the scored point starts along x, before the reset's jitter (the gripper's spot in Reach)."""
    return task.block_start[0] if task.block_start is not None else GRIPPER_START_X


def view_limits(task: world.FetchTask) -> tuple[tuple[float, float], tuple[float, float]]:
    """(y limits, reversed; x limits): the table's top, grown to hold every zone and its label."""
    zones = task.zone_array
    low = min(TABLE_X[0], zones[:, 0].min() - world.ZONE_RADIUS - 0.09)
    high = max(TABLE_X[1], zones[:, 0].max() + world.ZONE_RADIUS + 0.09)
    return TABLE_Y[::-1], (low, high)


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def draw_dataset_episodes(ax: Axes, episodes: list[tuple[np.ndarray, int]], task: world.FetchTask,
                          per_mode: int) -> None:
    """The scored point's path in the first `per_mode` episodes of each mode, and where each starts."""
    shown = dict.fromkeys(range(len(task.zones)), 0)
    for observations, mode in episodes:
        if shown[mode] >= per_mode:
            continue
        shown[mode] += 1
        point = observations[:, task.scored]
        ax.plot(point[:, 1], point[:, 0], color=MODE_COLOURS[mode], lw=0.7, alpha=0.5, zorder=2)
        ax.plot(point[0, 1], point[0, 0], marker="o", ms=1.5, color="black", alpha=0.5, zorder=3)


def mean_of_modes_episode(task: world.FetchTask) -> behaviour.Episode:
    env = world.MultimodalFetchEnv(task.name)
    try:
        return behaviour.run_episode(env, behaviour.mean_of_modes_policy(task), MEAN_OF_MODES_SEED)
    finally:
        env.close()


def dataset_figure(name: str, seed: int = 0, episodes_per_mode: int = 40) -> Figure:
    """The top view of dataset `name` (generated into the cache first if needed)."""
    task = world.TASKS[name]
    path = fetch_dataset.dataset_path(name, seed)
    rows = mode_table(name, seed)
    with h5py.File(path, "r") as f:
        num_episodes = len(f["metadata/episode_modes"])
    fig = Figure(figsize=(7.2, 6.6), dpi=100)  # no pyplot: works without a display and leaks no global figures
    ax = fig.subplots()
    draw_table(ax, task)
    draw_dataset_episodes(ax, split_episodes(path), task, episodes_per_mode)
    average = mean_of_modes_episode(task).observations[:, task.scored]
    ax.plot(average[:, 1], average[:, 0], color="black", ls="--", lw=1.8, zorder=7)
    ax.plot(average[-1, 1], average[-1, 0], marker="X", color="crimson", ms=10, zorder=8)
    point = "gripper" if task.block_start is None else "block"
    handles = [Line2D([], [], color=MODE_COLOURS[r["mode"]], lw=2,
                      label=f"mode {r['mode']} → {r['name']}: {r['share']:.0%} of episodes, "
                            f"mean return {r['mean_return']:.2f}") for r in rows]
    handles += [Line2D([], [], color="black", marker="o", ms=3, lw=0, label=f"where the {point} starts"),
                Line2D([], [], color="black", ls="--", lw=1.8, marker="X", mfc="crimson", mec="crimson", ms=8,
                       label="average of the modes' actions: reaches no zone")]
    if task.block_start is not None:
        handles.append(Line2D([], [], color="black", ls=":", lw=1.2, label="the block's nominal spot (5 cm)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncol=1, frameon=False)
    xlim, ylim = view_limits(task)
    ax.set(xlim=xlim, ylim=ylim, aspect="equal", xlabel="y (m, to the robot's left)",
           ylabel="x (m, away from the robot)")
    ax.set_title(f"{name} (seed {seed}): the {point}'s path in {episodes_per_mode} episodes per mode, seen from "
                 f"above\n{num_episodes:,} episodes by 3 scripted demonstrators; zones of "
                 f"{world.ZONE_RADIUS * 100:.0f} cm radius{zone_height_note(task)}", fontsize=9.5)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def shares_figure(results: list[strategies.RunStrategies]) -> Figure:
    """One panel per Fetch dataset, one stacked bar per agent: the share of its evaluation episodes (all its runs
    together) that went for each zone, and for none."""
    by_dataset = strategies.group_by_agent(results)
    most = max(len(agents) for agents in by_dataset.values())
    fig = Figure(figsize=(max(4.5, 1.1 * most + 1.5) * len(by_dataset), 4.8), dpi=110)
    axes = np.atleast_1d(fig.subplots(1, len(by_dataset), sharey=True, squeeze=False)[0])
    for ax, (name, agents) in zip(axes, by_dataset.items()):
        task = world.TASKS[name]
        labels = list(agents)
        shares = np.array([strategies.shares(np.concatenate([r.strategies for r in runs]), task)
                           for runs in agents.values()])
        bottom = np.zeros(len(labels))
        for column, zone in enumerate([*range(len(task.zones)), world.NO_ZONE]):
            bars = ax.bar(range(len(labels)), shares[:, column], bottom=bottom, width=0.7, color=mode_colour(zone),
                          edgecolor="white", linewidth=0.8)
            ax.bar_label(bars, labels=[f"{s:.0%}" if s >= 0.06 else "" for s in shares[:, column]],
                         label_type="center", fontsize=7.5)
            bottom += shares[:, column]
        ticks = []
        for label, runs in agents.items():
            returns = np.concatenate([r.returns for r in runs])
            ticks.append(f"{label}\n{len(runs)} run{'s' * (len(runs) != 1)}, {len(returns)} ep.\n"
                         f"score {strategies.normalised_score(name, returns):.0f}")
        ax.set_xticks(range(len(labels)), ticks, fontsize=8)
        ax.set_xlim(-0.6, most - 0.4)  # bars as wide in every panel
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 1)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(handles=[Patch(color=MODE_COLOURS[k], label=f"zone {k} ({n}, worth {w:g})")
                           for k, (n, w) in enumerate(zip(task.mode_names, task.worths))]
                  + [Patch(color=NONE_COLOUR, label="no zone")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=2, frameon=False)
    axes[0].set_ylabel("share of evaluation episodes")
    axes[0].yaxis.set_major_formatter(PercentFormatter(1.0))
    fig.suptitle("which zone each agent's evaluation episodes went for", fontsize=11)
    fig.tight_layout()
    return fig


def save(fig: Figure, out: Path) -> None:
    with writing(str(out), "choose a writable --out path"):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m lom.fetch.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help=f"a Fetch dataset: {', '.join(fetch_dataset.DATASET_NAMES)}")
    parser.add_argument("--agents", nargs="+", type=Path, metavar="PATH",
                        help="instead of a dataset: run folders of trained agents, or folders holding them")
    parser.add_argument("--out", type=Path, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=None,
                        help="dataset seed (default 0); with --agents, evaluation episode i is reset with seed + i "
                        f"(default {strategies.EVAL_SEED})")
    parser.add_argument("--episodes", type=int, default=strategies.EPISODES,
                        help="with --agents: evaluation episodes per run")
    parser.add_argument("--episodes-per-mode", type=int, default=40, help="dataset trajectories drawn per mode")
    parser.add_argument("--table", type=Path, help="with --agents: also write the printed table to this Markdown file")
    args = parser.parse_args(argv)
    if (args.name is None) == (args.agents is None):
        parser.error("give either a Fetch dataset name or --agents PATH ...")
    if args.agents is None:
        if args.name not in fetch_dataset.DATASET_NAMES:
            raise LOMError(f"unknown Fetch dataset {args.name} — use {', '.join(fetch_dataset.DATASET_NAMES)}")
        out = args.out or default_dataset_figure(args.name)
        save(dataset_figure(args.name, args.seed or 0, args.episodes_per_mode), out)
    else:
        if args.episodes < 1:
            raise LOMError(f"--episodes must be at least 1, got {args.episodes}")
        seed = strategies.EVAL_SEED if args.seed is None else args.seed
        results = strategies.evaluate_runs(args.agents, args.episodes, seed, progress=sys.stderr.isatty())
        table = strategies.format_table(results, seed)
        print(table)
        out = args.out or args.agents[0] / STRATEGIES_FIGURE
        save(shares_figure(results), out)
        if args.table:
            with writing(str(args.table), "choose a writable --table path"), atomic_path(args.table) as tmp:
                tmp.write_text(f"```text\n{table}\n```\n")
            print(f"wrote {args.table}")
    print(f"wrote {out}")


if __name__ == "__main__":
    run_cli(main)
