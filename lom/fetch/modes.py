"""Print the behaviour modes of the Fetch datasets: `python -m lom.fetch.modes [NAME ...]`.

For each dataset (default: all three; each is generated into the cache first if it is not there yet): every mode's
zone, what reaching it is worth, its share of the episodes, its episodes' mean return and how many reached a zone.
`--measure` also measures the reference returns (uniform random policy and best demonstrator) again.
"""

from __future__ import annotations

import h5py
import numpy as np

from lom.cli import OneLineParser
from lom.errors import LOMError, run_cli
from lom.fetch import dataset as fetch_dataset, world


def mode_table(name: str, seed: int = 0) -> list[dict]:
    """One row per mode: name, worth, share of episodes, mean return, share of episodes that reached any zone."""
    with h5py.File(fetch_dataset.dataset_path(name, seed), "r") as f:
        modes, returns = f["metadata/episode_modes"][:], f["metadata/episode_returns"][:]
        ends = np.flatnonzero(f["terminals"][:] | f["timeouts"][:])
        reached = f["terminals"][:][ends]
    task = world.TASKS[name]
    return [{"mode": k, "name": task.mode_names[k], "worth": task.worths[k], "share": float(np.mean(modes == k)),
             "mean_return": float(returns[modes == k].mean()), "success": float(reached[modes == k].mean())}
            for k in range(len(task.zones))]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m lom.fetch.modes", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(fetch_dataset.DATASET_NAMES), help="Fetch dataset names")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--measure", action="store_true",
                        help=f"measure the reference returns again ({fetch_dataset.REFERENCE_EPISODES} episodes each)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in fetch_dataset.DATASET_NAMES]
    if unknown:
        raise LOMError(f"unknown Fetch dataset {', '.join(unknown)} — use {', '.join(fetch_dataset.DATASET_NAMES)}")
    for name in args.names:
        rows = mode_table(name, args.seed)
        print(f"{name} (seed {args.seed}): {len(rows)} modes")
        print(f"  {'mode':<4} {'zone':<17} {'worth':>5} {'share':>6} {'mean return':>11} {'reached':>7}")
        for row in rows:
            print(f"  {row['mode']:<4} {row['name']:<17} {row['worth']:>5.2f} {row['share']:>6.1%} "
                  f"{row['mean_return']:>11.3f} {row['success']:>7.1%}")
        best = max(rows, key=lambda r: r["mean_return"])
        rarest = min(rows, key=lambda r: r["share"])
        print(f"  best mode: {best['mode']} ({best['name']}), the rarest: {'yes' if best is rarest else 'NO'}")
        ref_min, ref_max = fetch_dataset.REFERENCES[name]
        print(f"  reference returns (score 0 / 100): {ref_min:.4f} / {ref_max:.4f}")
        if args.measure:
            low, high = fetch_dataset.measure_references(name)
            print(f"  measured now: random {low:.4f}, best demonstrator {high:.4f}")


if __name__ == "__main__":
    run_cli(main)
