"""benchmarks/mutation_check.py stays applicable: every mutation's pattern matches its file exactly once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_check", REPO / "benchmarks" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_every_mutation_matches_its_source_once_and_names_existing_tests(monkeypatch):
    mutations = load_script(monkeypatch).MUTATIONS
    assert len({m.name for m in mutations}) == len(mutations)
    for m in mutations:
        assert (REPO / m.path).read_text().count(m.before) == 1, f"{m.name}: pattern not found once in {m.path}"
        assert m.after != m.before and m.tests and all((REPO / t).is_file() for t in m.tests), m.name
        assert all(t.startswith("tests/") for t in m.tests), f"{m.name}: its tests must be test files"
