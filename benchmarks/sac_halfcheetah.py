"""Benchmark: SAC on HalfCheetah-v4 must reach an average evaluation return >= 4000 within 300k environment steps.

Runs the whole dataset collection of `python -m lom.collect` (training, then the six D4RL-format files), prints
the evaluation curve, the best and final average returns and the wall time, and exits non-zero when the best
average return misses the target. With --steps below 300000 it only reports (a shortened run cannot be judged).
Rerunning the same command resumes an interrupted run.

    python benchmarks/sac_halfcheetah.py --out runs/collect_halfcheetah
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lom.collect import collection as collect  # noqa: E402
from lom.errors import LOMError  # noqa: E402

ENV_ID = "HalfCheetah-v4"
FULL_STEPS = 300_000
TARGET_RETURN = 4000.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/collect_halfcheetah"))
    p.add_argument("--steps", type=int, default=FULL_STEPS, help=f"SAC steps; below {FULL_STEPS} only reports")
    p.add_argument("--transitions", type=int, default=1_000_000, help="rows of the medium and expert files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no_progress", action="store_true")
    return p


def _collect_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--env", ENV_ID, "--out", str(args.out), "--steps", str(args.steps), "--transitions", str(args.transitions),
            "--seed", str(args.seed), "--device", args.device, "--threads", str(args.threads)]  # fmt: skip
    return argv + (["--no_progress"] if args.no_progress else [])


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*is out of date.*")
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        config = collect.config_from_args(collect.build_parser().parse_args(_collect_argv(args)))
        result = collect.collect(config)
    except LOMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"SAC on {ENV_ID}, seed {args.seed}: evaluation curve (deterministic policy)")
    print(f"{'step':>8} {'return mean':>12} {'std':>8} {'train wall min':>15}")
    for row in result.evals:
        print(f"{row.step:>8} {row.return_mean:>12.1f} {row.return_std:>8.1f} {row.wall_time_s / 60:>15.1f}")
    print(collect.summary(result))
    judged = [row for row in result.evals if row.step <= FULL_STEPS]  # "within 300k steps", even if run longer
    best = max(judged, key=lambda row: row.return_mean)
    print(f"best average return within {min(args.steps, FULL_STEPS)} steps: {best.return_mean:.1f} at step {best.step}")
    call_min = (time.perf_counter() - started) / 60
    print(f"wall time: training {result.wall_time_s / 60:.1f} min (all sessions), this call {call_min:.1f} min "
          f"(training resumed from step {result.resumed_from_step})")  # fmt: skip
    if args.steps < FULL_STEPS:
        print(f"shortened run ({args.steps} < {FULL_STEPS} steps): not judged against {TARGET_RETURN:.0f}")
        return 0
    passed = best.return_mean >= TARGET_RETURN
    print(f"{'PASS' if passed else 'FAIL'}: best average return {best.return_mean:.1f} vs target {TARGET_RETURN:.0f}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
