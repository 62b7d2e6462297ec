"""The README and docs/ stay true: the flags table in docs/flags.md is train.py's parser, every file, figure, module
and link they name exists, every docs/ page is linked from a README a newcomer reads in five minutes, and the
README's test command is the one CI runs.

When a flag is added or its help changes, rewrite the table with `python tests/test_readme.py --write-flags`."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for `python tests/test_readme.py --write-flags`

import train  # noqa: E402
from lom.config import LOMHyperParams, Schedule  # noqa: E402

README = (REPO / "README.md").read_text()
DOCS = {path: path.read_text() for path in sorted((REPO / "docs").glob("*.md"))}
TEXTS = {REPO / "README.md": README, **DOCS}
FLAGS_PAGE = REPO / "docs" / "flags.md"
FLAGS_HEADER = "| flag | default | meaning |\n|---|---|---|\n"
PER_DATASET = {f.name for f in dataclasses.fields(Schedule)} | {f.name for f in dataclasses.fields(LOMHyperParams)}
TEST_COMMAND = "OMP_NUM_THREADS=1 python -m pytest -q -rs tests"


def flag_rows() -> list[str]:
    """The table of train.py's flags, one row per flag, as the parser defines them."""
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


def flags_table(text: str) -> list[str]:
    return [line for line in text.split(FLAGS_HEADER, 1)[1].splitlines() if line.startswith("| `--")]


def write_flags_table() -> None:
    """Replace the table in docs/flags.md with the parser's rows; the prose around it stays."""
    text = FLAGS_PAGE.read_text()
    before, after = text.split(FLAGS_HEADER, 1)
    rest = after.splitlines(keepends=True)
    while rest and rest[0].startswith("| `--"):
        rest.pop(0)
    FLAGS_PAGE.write_text(before + FLAGS_HEADER + "".join(row + "\n" for row in flag_rows()) + "".join(rest))


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {anchor(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def links(text: str) -> list[str]:
    """Relative link and image targets of a Markdown text (code blocks left out)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"\w+:", t)]


def test_the_flags_table_is_the_parsers():
    expected = flag_rows()
    assert flags_table(FLAGS_PAGE.read_text()) == expected, (
        "docs/flags.md differs from train.py's parser: run `python tests/test_readme.py --write-flags`; rows it "
        "should hold:\n" + "\n".join(expected))


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = README.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference material into docs/"
    top = "\n".join(lines[:60])
    assert "python train.py" in top and TEST_COMMAND in top


def test_the_readmes_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(TEST_COMMAND)}(\s|$)", ci, flags=re.M), f".ci/run must run `{TEST_COMMAND}`"


def test_the_setup_makes_a_virtual_environment_and_names_both_pytorch_builds():
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", setup, flags=re.S)[0].splitlines()
    assert commands[0].startswith("python -m venv ") and "activate" in commands[0]
    assert commands[1].startswith("pip install torch==") and "--index-url https://download.pytorch.org/whl/cpu" in \
        commands[1], "a CPU-only machine needs PyTorch's CPU wheel index, or pip brings the CUDA build"
    assert commands[2] == "pip install -r requirements.txt"
    assert re.search(r"CUDA GPU.*plain `pip install torch==", setup, flags=re.S), "the CUDA machines' line"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / target.split("#")[0]).resolve() for target in links(README)}
    unlinked = [p.name for p in DOCS if p.resolve() not in linked]
    assert DOCS and not unlinked, f"docs/ pages the README does not link: {unlinked}"


def test_every_link_and_anchor_resolves():
    broken = []
    for path, text in TEXTS.items():
        for target in links(text):
            file, _, fragment = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text()):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_file_and_module_the_readme_and_docs_name_exists():
    missing, modules = [], set()
    for path, text in TEXTS.items():
        names = set(re.findall(r"(?<![\w/.])((?:lom|docs|benchmarks|tests|results)/[\w/.-]*\w)", text))
        names |= set(re.findall(r"`([\w.-]+\.(?:py|sh|txt))`", text))
        missing += [f"{path.relative_to(REPO)}: {name}" for name in sorted(names)
                    if not any((REPO / root / name).exists() for root in ("", "lom", "lom/data", "lom/agents"))]
        modules |= set(re.findall(r"python -m (lom(?:\.\w+)*)", text))
    assert not missing, "README.md and docs/ name files that do not exist:\n" + "\n".join(missing)
    assert modules, "the README and docs run modules with python -m"
    for module in modules:
        path = REPO / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module


def test_nothing_refers_to_a_shared_folder_users_do_not_have():
    texts = {str(p.relative_to(REPO)): t for p, t in TEXTS.items()}
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "lom").rglob("*.py")}
    found = [name for name, text in texts.items() if re.search(r"shared/|shared README", text)]
    assert not found, f"references to a shared/ folder or 'shared README' in {found}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-flags"]:
        sys.exit("usage: python tests/test_readme.py --write-flags   (rewrites the table in docs/flags.md)")
    write_flags_table()
    print(f"wrote {len(flag_rows())} flags into {FLAGS_PAGE.relative_to(REPO)}")
