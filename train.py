"""Train one agent (LOM by default) on one dataset: `python train.py --env_name halfcheetah-full-replay-v2`."""

import argparse
import sys

from lom.agents import REGISTRY, agent_config, flag_prefix  # loads no torch, so --help and --print_run_dir stay fast
from lom.cli import build_parser, config_from_args, parse_seeds, run_cli
from lom.errors import LOMError


def agent_flags() -> dict[str, tuple[str, type]]:
    """Each baseline's flag prefix and config (lom/agents/configs.py)."""
    return {name: (flag_prefix(name), config) for name, (_, config) in REGISTRY.items() if config is not None}


def parser(agent: str | None = None) -> argparse.ArgumentParser:
    """train.py's flags; `agent`: --help lists the common flags and that agent's own (None: every agent's)."""
    flags = build_parser("train.py", "Train LOM (or a baseline) on an offline dataset, evaluate it, save the run. "
                         "`--agent IQL --help` lists IQL's own flags.", agent_flags(), agent)
    flags.add_argument("--seeds", default=None,
                       help="train several seeds in one process as one stacked model, e.g. 0,1,2 or 0-4 (instead of "
                            "--seed); each seed writes, locks and resumes the run folder --seed would give it")
    flags.add_argument("--print_run_dir", action="store_true",
                       help="print the run folder these flags map to (one per seed) and exit without training")
    return flags


def main() -> None:
    import dataclasses

    chosen = argparse.ArgumentParser(add_help=False)
    chosen.add_argument("--agent", default=None)
    args = parser(chosen.parse_known_args()[0].agent).parse_args()
    cfg = config_from_args(args, agent_flags())
    agent_config(cfg)  # a bad --iql_... value fails here, in one line, before any run folder is touched
    if args.seeds is not None and any(arg == "--seed" or arg.startswith("--seed=") for arg in sys.argv[1:]):
        raise LOMError("--seed and --seeds name the seeds twice: give one of them")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else (cfg.seed,)
    if args.print_run_dir:  # for scripts: answer without importing torch
        from lom.data import resolve_dataset
        from lom.run_folder import run_directory_for

        name = resolve_dataset(cfg.env_name, cfg.dataset_path).name
        for seed in seeds:
            print(run_directory_for(dataclasses.replace(cfg, seed=seed), name))
        return

    from lom.devices import set_torch_threads  # after parsing, so --help stays fast
    from lom.training.trainer import Trainer

    set_torch_threads()
    Trainer(cfg, seeds).run()


if __name__ == "__main__":
    run_cli(main)
