"""The package's import graph, read from the source (imports inside functions included): no module imports itself
through others, and the layers only import downward, bottom first:
  foundations (errors, io, run_folder, config, cli, seeds, devices, networks)
  → data (with the fork's and the Fetch tasks' world, behaviour and dataset) → envs (with their envs) → agents
  → training → tools (evaluate, export, collect, the fork's figure, the Fetch modes table, figures and
  agents' strategies) → sweep → report.
Also: at most MAX_TOP_MODULES modules directly under lom/, the torch-free modules load no torch (the agents'
registry among them), and every agent in the registry is found."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lom"
# Each layer is a tuple of module prefixes; a module belongs to the layer of the longest prefix that matches it.
LAYERS = (
    ("lom.errors", "lom.io", "lom.run_folder", "lom.config", "lom.cli", "lom.seeds", "lom.devices", "lom.networks"),
    ("lom.data", "lom.fork", "lom.fetch"),
    ("lom.envs", "lom.fork.env", "lom.fetch.env"),
    ("lom.agents",),
    ("lom.training",),
    ("lom.evaluate", "lom.export", "lom.collect", "lom.fork.plot", "lom.fetch.modes", "lom.fetch.plot",
     "lom.fetch.strategies"),
    ("lom.sweep",),
    ("lom.report",),
)
MAX_TOP_MODULES = 10
# Modules the sweep and the report load (or that they are meant to be able to load) without torch; lom.agents: the
# registry and configs train.py builds its flags from.
TORCH_FREE = ("lom.run_folder", "lom.sweep.__main__", "lom.report.cli", "lom.agents")


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules that importing it runs, parent packages included (their __init__ runs too),
    except its own parent packages, which Python has already started by then."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        own_parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t in modules and t != name and t not in own_parents}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> int | None:
    matches = [(len(prefix), i) for i, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def test_the_graph_reader_sees_lazy_imports_and_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "lom.data.minari_source" in import_graph()["lom.envs"]


def test_no_module_imports_itself_through_others():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_only_downward():
    upward = [f"{src} -> {dst}" for src, targets in import_graph().items() for dst in targets
              if layer_of(src) is not None and layer_of(dst) is not None and layer_of(dst) > layer_of(src)]
    assert not upward, "imports against the layer order: " + ", ".join(sorted(upward))


def test_every_module_has_a_layer():
    assert not [m for m in import_graph() if m != "lom" and layer_of(m) is None]


def test_the_sweep_sits_below_the_report():
    assert layer_of("lom.sweep.plan") < layer_of("lom.report.status")
    assert not [f"{src} -> {dst}" for src, targets in import_graph().items() if src.startswith("lom.sweep")
                for dst in targets if dst.startswith("lom.report")]


def test_few_modules_directly_under_the_package():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules directly under lom/: {', '.join(top)}"


def test_torch_free_modules_load_no_torch():
    """Checked in a fresh interpreter, so that everything they import, however indirectly, counts."""
    code = (f"import sys; import {', '.join(TORCH_FREE)}; "
            "print(sorted(m for m in ('torch', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_agent_in_the_registry_is_its_module_s_class_of_that_name():
    from lom.agents import AGENTS
    assert all(cls.name == name for name, cls in AGENTS.items())