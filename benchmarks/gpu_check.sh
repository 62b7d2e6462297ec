#!/usr/bin/env bash
# Every GPU check in one run, each step under its own time limit (all of them under 8 minutes on one H100): the
# CUDA tests of tests/test_cuda_graphs.py; train.py --seeds 0,1 with eager steps and with captured steps, whose
# metrics.csv must agree within 1e-4; 200 training steps per agent with every synchronising CUDA call an error;
# benchmarks/captured_steps.py and throughput.py --quick. Figures go to $OUT (default ./gpu_check) as JSON, with one
# log of every step.
#
#   bash benchmarks/gpu_check.sh                      # on a machine with a CUDA GPU
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh
# Exit status: 0 every check passed, 1 one failed or ran out of time, 2 $PYTHON has no torch, 3 no CUDA device.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-python}"
out="${OUT:-gpu_check}"
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    echo "benchmarks/gpu_check.sh: '$py' cannot import torch; install the requirements (README, Set-up) or set PYTHON" >&2
    exit 2
fi
if ! "$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "benchmarks/gpu_check.sh: PyTorch sees no CUDA device here; run it on a machine with a GPU" >&2
    exit 3
fi
mkdir -p "$out"
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT
log="$out/gpu_check.log"
status=0
step() {  # name, time limit in seconds, command...
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit} s): $*" | tee -a "$log"
    local start=$SECONDS
    PYTHONUNBUFFERED=1 timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "== $name: ran out of its ${limit} s" | tee -a "$log"
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
    [ "$rc" = 0 ] || status=1
}
seeds=(--seeds 0,1 --training_steps 600 --gmm_steps 300 --eval_every 200 --eval_episodes 3 --log_every 100
       --device cuda)
step device 10 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step tests 180 "$py" -m pytest -q -rs -p no:cacheprovider tests/test_cuda_graphs.py
step eager_seeds 50 "$py" train.py "${seeds[@]}" --cuda_graphs 0 --log_path "$runs/eager"
step captured_seeds 50 "$py" train.py "${seeds[@]}" --cuda_graphs 1 --log_path "$runs/captured"
step same_metrics 10 "$py" benchmarks/gpu_check.py same-metrics "$runs/eager" "$runs/captured" --tolerance 1e-4 \
    --json "$out/same_metrics.json"
step no_sync 40 "$py" benchmarks/gpu_check.py no-sync --steps 200 --json "$out/no_sync.json"
step captured_steps 60 "$py" benchmarks/captured_steps.py --quick --device cuda --json "$out/captured_steps.json"
step throughput 60 "$py" benchmarks/throughput.py --quick --device cuda --json "$out/throughput.json"
exit $status
