#!/usr/bin/env bash
# Every GPU check of the captured training steps in one run (well under 10 minutes on one H100): the CUDA-only
# tests (captured = eager losses, fresh noise per replay and per stacked seed, resume, NaN guard, seed isolation
# with --seeds), captured vs eager steps/s and their agreement over 1,000 steps per agent, and the throughput
# benchmark on the device (with its 1-seed against 5-stacked-seeds rows, eager and captured). Figures go to $OUT (default
# ./gpu_check), one JSON file and one log per step.
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-gpu_check}"
mkdir -p "$out"
if ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "benchmarks/gpu_check.sh: PyTorch sees no CUDA device here; run it on a machine with a GPU" >&2
    exit 3
fi
status=0
step() {  # name, command...
    local name=$1; shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || status=1
}
step device nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step tests python -m pytest -q -rs tests/test_cuda_graphs.py
step captured_steps python benchmarks/captured_steps.py --device cuda --json "$out/captured_steps.json"
step throughput python benchmarks/throughput.py --device cuda --quick --json "$out/throughput.json"
exit $status
