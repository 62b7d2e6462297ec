"""Train one agent (LOM by default) on one dataset: `python train.py --env_name halfcheetah-full-replay-v2`."""

import argparse

from lom.cli import build_parser, config_from_args, run_cli


def parser() -> argparse.ArgumentParser:
    flags = build_parser("train.py", "Train LOM (or a baseline) on an offline dataset, evaluate it, save the run.")
    flags.add_argument("--print_run_dir", action="store_true",
                       help="print the run folder these flags map to and exit without training")
    return flags


def main() -> None:
    args = parser().parse_args()
    cfg = config_from_args(args)
    if args.print_run_dir:  # for scripts: answer without importing torch
        from lom.data import resolve_dataset
        from lom.run_logging import run_directory_for

        print(run_directory_for(cfg, resolve_dataset(cfg.env_name, cfg.dataset_path).name))
        return

    from lom.threads import set_torch_threads  # after parsing, so --help stays fast
    from lom.trainer import Trainer

    set_torch_threads()
    Trainer(cfg).run()


if __name__ == "__main__":
    run_cli(main)
