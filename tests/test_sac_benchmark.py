"""benchmarks/sac_halfcheetah.py: a shortened run only reports; a full run is judged on evaluations within 300k."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lom.collect import collection as collect
from lom.collect.sac import EvalRow

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "sac_halfcheetah.py"


@pytest.fixture
def sac_benchmark(monkeypatch):
    spec = importlib.util.spec_from_file_location("sac_halfcheetah_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_shortened_run_collects_for_real_and_is_not_judged(sac_benchmark, tmp_path, capsys):
    out = tmp_path / "bench"
    assert sac_benchmark.main(["--steps", "300", "--transitions", "100", "--out", str(out), "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert "shortened run (300 < 300000 steps): not judged against 4000" in printed
    assert len(list(out.glob("halfcheetah-v4_*.hdf5"))) == len(collect.KINDS)


def _finished(returns_by_step: dict[int, float]) -> collect.CollectResult:
    evals = [EvalRow(step, ret, 0.0, 60.0 * i) for i, (step, ret) in enumerate(returns_by_step.items(), 1)]
    references = collect.References(-280.0, 80.0, 5000.0, 50.0, 10)
    return collect.CollectResult(files={}, references=references, evals=evals, medium_step=10_000, resumed_from_step=0)


@pytest.mark.parametrize(
    "returns_by_step, passed",
    [
        ({100_000: 3000.0, 290_000: 4100.0, 300_000: 3950.0}, True),  # the best evaluation counts
        ({100_000: 3000.0, 300_000: 3990.0}, False),
        ({300_000: 3990.0, 310_000: 4500.0}, False),  # a longer run does not pass on steps past 300k
    ],
)
def test_full_run_passes_only_when_an_evaluation_within_300k_reaches_4000(
    sac_benchmark, monkeypatch, capsys, tmp_path, returns_by_step, passed
):
    monkeypatch.setattr(collect, "collect", lambda config: _finished(returns_by_step))
    monkeypatch.setattr(collect, "summary", lambda result: "")
    steps = str(max(returns_by_step))
    assert sac_benchmark.main(["--steps", steps, "--out", str(tmp_path), "--no_progress"]) == (0 if passed else 1)
    assert ("PASS" if passed else "FAIL") in capsys.readouterr().out
