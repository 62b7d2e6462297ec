"""Command-line parsing shared by the entry points: flags, their types and their help come from the config dataclasses
themselves (TrainConfig, and each baseline's config in lom/agents/configs.py)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import NoReturn

from lom.config import MIXTURE_AGENTS, TrainConfig
from lom.errors import LOMError, run_cli  # noqa: F401  (run_cli: the entry points' wrapper, imported from here)


def parse_seeds(text: str) -> tuple[int, ...]:
    """--seeds: "0,1,2", "0-4" or a mix ("0-2,7"), each seed once."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise LOMError(f"--seeds {text!r}: expected seeds like 0,1,2 or a range like 0-4")
        if dash and int(last) < int(first):
            raise LOMError(f"--seeds {text!r}: the range {part} runs backwards; write it {last}-{first}")
        seeds += range(int(first), int(last) + 1) if dash else [int(first)]
    if not seeds or len(set(seeds)) != len(seeds):
        raise LOMError(f"--seeds {text!r}: name each seed once (and at least one), e.g. 0,1,2 or 0-4")
    return tuple(seeds)


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0 or true/false, got {text!r}")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each flag's default, except where there is none to show (None, or an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required or isinstance(action, argparse._StoreTrueAction):
            return action.help
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line costs the user one line, not a usage dump, and --help shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_flag(parser, name: str, annotation, default, help_text: str) -> None:
    base = next((t for t in typing.get_args(annotation) if t is not type(None)), annotation)  # X | None -> X
    if base is bool:
        parser.add_argument(name, type=parse_bool, nargs="?", const=True, default=default, help=help_text)
    else:
        parser.add_argument(name, type=base, default=default, help=help_text)


def build_parser(prog: str, description: str, agent_configs: dict[str, tuple[str, type]] | None = None,
                 agent: str | None = None) -> argparse.ArgumentParser:
    """train.py's flags: TrainConfig's fields (LOM's own in a group of their own), then a group per baseline in
    `agent_configs` (name → (flag prefix, config class)), flags named --<prefix>_<field>. `agent`: --help shows the
    common flags and that agent's only (every flag is still accepted)."""
    parser = OneLineParser(prog=prog, description=description)
    lom = parser.add_argument_group("LOM's settings (MDN reads the mixture's; the other agents record them unused)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if "help" in f.metadata:
            shown = agent in (None, *MIXTURE_AGENTS) or not f.metadata["lom"]
            _add_flag(lom if f.metadata["lom"] else parser, f"--{f.name}", hints[f.name], f.default,
                      f.metadata["help"] if shown else argparse.SUPPRESS)
    for name, (prefix, config_class) in (agent_configs or {}).items():
        group = parser.add_argument_group(f"{name}'s hyper-parameters (with --agent {name})")
        shown = agent in (None, name)
        for f in dataclasses.fields(config_class):  # default None: only what the user gives goes into agent_hp
            help_text = f"{f.metadata['help']} (default: {f.default})" if shown else argparse.SUPPRESS
            _add_flag(group, f"--{prefix}_{f.name}", typing.get_type_hints(config_class)[f.name], None, help_text)
    return parser


def config_from_args(args: argparse.Namespace, agent_configs: dict[str, tuple[str, type]] | None = None
                     ) -> TrainConfig:
    """The TrainConfig of parsed flags; the chosen baseline's flags that were given go into `agent_hp`, and another
    agent's flags are refused."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if "help" in f.metadata}
    agent_hp = {}
    for name, (prefix, config_class) in (agent_configs or {}).items():
        for f in dataclasses.fields(config_class):
            value = getattr(args, f"{prefix}_{f.name}")
            if value is None:
                continue
            if name != args.agent:
                raise LOMError(f"--{prefix}_{f.name} is {name}'s hyper-parameter, but this run trains {args.agent}: "
                               f"add --agent {name} or drop the flag")
            agent_hp[f.name] = value
    return TrainConfig(**values, agent_hp=agent_hp)
