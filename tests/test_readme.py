"""The README stays true: its flags table is train.py's parser, and every file, figure and module it names exists."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import train
from lom.config import LOMHyperParams, Schedule

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PER_DATASET = {f.name for f in dataclasses.fields(Schedule)} | {f.name for f in dataclasses.fields(LOMHyperParams)}


def flag_rows() -> list[str]:
    """The README's table of train.py's flags, one row per flag, as the parser defines them."""
    rows = []
    for action in train.parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.dest
        if isinstance(action.default, bool) and action.nargs == 0:
            default = "—"  # a switch
        elif isinstance(action.default, bool):
            default = f"`{int(action.default)}`"
        elif action.default is None:
            default = "`per dataset`" if name in PER_DATASET else "`—`"
        else:
            default = f"`{action.default}`"
        rows.append(f"| `--{name}` | {default} | {action.help} |")
    return rows


def test_the_flags_table_is_the_parsers():
    table = README.split("## Flags of `train.py`", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    expected = flag_rows()
    assert rows == expected, "README flags table differs from the parser; rows it should hold:\n" + "\n".join(expected)


def test_every_file_and_module_the_readme_names_exists():
    paths = set(re.findall(r"\b((?:lom|docs|benchmarks|tests)/[\w/.-]*\w)", README))
    paths |= set(re.findall(r"`([\w.-]+\.(?:py|sh|txt))`", README))
    missing = sorted(p for p in paths if not (REPO / p).exists() and not (REPO / "lom" / p).exists()
                     and not (REPO / "lom" / "data" / p).exists() and not (REPO / "lom" / "agents" / p).exists())
    assert not missing, f"the README names files that do not exist: {missing}"
    modules = set(re.findall(r"python -m (lom(?:\.\w+)*)", README))
    assert modules, "the README runs modules with python -m"
    for module in modules:
        path = REPO / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module


def test_nothing_refers_to_a_shared_folder_users_do_not_have():
    texts = {"README.md": README, **{str(p.relative_to(REPO)): p.read_text() for p in (REPO / "lom").rglob("*.py")}}
    found = [name for name, text in texts.items() if re.search(r"shared/|shared README", text)]
    assert not found, f"references to a shared/ folder or 'shared README' in {found}"
