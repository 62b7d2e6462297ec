#!/usr/bin/env bash
# Replicate the paper's tables: train every dataset × seed × agent with train.py, spread over the GPUs (or the CPU
# cores), then print the command that builds the report.
#
# Re-running is safe and cheap: runs with a results.json are skipped and interrupted ones resume from their last
# checkpoint (--resume is always passed), so after a crash the same command finishes the sweep.
#
# Usage: [VAR=value ...] ./run_baselines.sh [extra train.py arguments, passed to every run]
#   DATASETS       datasets to train on (default: the paper's 15 D4RL locomotion datasets)
#   SEEDS          default "0 1 2 3 4"
#   AGENTS         default "LOM IQL BC TD3BC"
#   STEPS          --training_steps; GMM_STEPS: --gmm_steps; EVAL_EVERY: --eval_every; EVAL_EPISODES:
#                  --eval_episodes (unset: train.py's per-dataset defaults, the paper's 1M / 200k / 10k / 10)
#   LOG_PATH       --log_path (default runs); job logs go to $LOG_PATH/logs/
#   JOBS_PER_GPU   concurrent jobs per GPU (default 2); GPUs come from CUDA_VISIBLE_DEVICES or `nvidia-smi -L`
#   JOBS           concurrent jobs when there is no GPU (default: nproc; each job gets OMP_NUM_THREADS=1)
#   DEVICE         auto (default), cpu or cuda
#   PYTHON         default python; TRAIN_SCRIPT: default train.py beside this script
#   DRY_RUN=1      print the commands that would run instead of running them
# Example: SEEDS="0 1" AGENTS="LOM BC" DATASETS="hopper-medium-v2" ./run_baselines.sh --eval_episodes 5
set -uo pipefail

PAPER_DATASETS="halfcheetah-medium-replay-v2 hopper-medium-replay-v2 walker2d-medium-replay-v2
halfcheetah-full-replay-v2 hopper-full-replay-v2 walker2d-full-replay-v2
halfcheetah-medium-v2 hopper-medium-v2 walker2d-medium-v2
halfcheetah-medium-expert-v2 hopper-medium-expert-v2 walker2d-medium-expert-v2
halfcheetah-expert-v2 hopper-expert-v2 walker2d-expert-v2"

# Lists are split on any whitespace, newlines included.
read -r -d '' -a datasets <<<"${DATASETS:-$PAPER_DATASETS}"
read -r -d '' -a seeds <<<"${SEEDS:-0 1 2 3 4}"
read -r -d '' -a agents <<<"${AGENTS:-LOM IQL BC TD3BC}"
log_path="${LOG_PATH:-runs}"
jobs_per_gpu="${JOBS_PER_GPU:-2}"
cpu_jobs="${JOBS:-$(nproc 2>/dev/null || echo 1)}"
device="${DEVICE:-auto}"
python="${PYTHON:-python}"
train_script="${TRAIN_SCRIPT:-$(dirname "${BASH_SOURCE[0]}")/train.py}"
dry_run="${DRY_RUN:-0}"
extra_args=("$@")

die() {
    echo "run_baselines.sh: $*" >&2
    exit 2
}

require_count() {  # name value: a positive integer (GMM_STEPS may be 0, with --gmm_path)
    [[ "$2" =~ ^[1-9][0-9]*$ || ("$1" == GMM_STEPS && "$2" == 0) ]] ||
        die "$1=$2 is not a positive integer — set it to e.g. 1"
}

require_count JOBS "$cpu_jobs"
require_count JOBS_PER_GPU "$jobs_per_gpu"
# Optional train.py flags: passed only when set, so train.py's per-dataset defaults apply otherwise.
optional_flags=()
for pair in STEPS:--training_steps GMM_STEPS:--gmm_steps EVAL_EVERY:--eval_every EVAL_EPISODES:--eval_episodes; do
    var="${pair%%:*}"
    if [[ -n "${!var:-}" ]]; then
        require_count "$var" "${!var}"
        optional_flags+=("${pair#*:}" "${!var}")
    fi
done
((${#datasets[@]} && ${#seeds[@]} && ${#agents[@]})) || die "DATASETS, SEEDS and AGENTS must each name at least one"
for seed in "${seeds[@]}"; do [[ "$seed" =~ ^[0-9]+$ ]] || die "SEEDS: '$seed' is not a seed — use e.g. SEEDS=\"0 1 2\""; done
[[ "$device" =~ ^(auto|cpu|cuda)$ ]] || die "DEVICE=$device — use auto, cpu or cuda"
[[ -f "$train_script" ]] || die "cannot find $train_script — run this script from the repository or set TRAIN_SCRIPT"

# GPU ids to spread jobs over: the ones CUDA_VISIBLE_DEVICES allows, else every GPU nvidia-smi lists.
gpus=()
if [[ "$device" != cpu ]]; then
    if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
        IFS=',' read -r -a gpus <<<"$CUDA_VISIBLE_DEVICES"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        mapfile -t gpus < <(nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9][0-9]*\):.*/\1/p')
    fi
fi
[[ "$device" != cuda || ${#gpus[@]} -gt 0 ]] || die "DEVICE=cuda but no GPU found (nvidia-smi -L) — use DEVICE=cpu"

# One slot per concurrent job; GPU slots interleave GPUs so consecutive jobs land on different GPUs.
slots=()
if ((${#gpus[@]})); then
    for ((r = 0; r < jobs_per_gpu; r++)); do
        for gpu in "${gpus[@]}"; do slots+=("gpu:$gpu"); done
    done
    where="${#gpus[@]} GPU(s) (${gpus[*]}), $jobs_per_gpu job(s) each"
else
    for ((r = 0; r < cpu_jobs; r++)); do slots+=("cpu"); done
    where="CPU, $cpu_jobs job(s) at a time"
fi

log_dir="$log_path/logs"
mkdir -p "$log_dir" || die "cannot create $log_dir — set LOG_PATH to a writable folder"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$log_dir/.sweep.lock"
    flock -n 9 || die "another run_baselines.sh is already training into $log_path — wait for it or use another LOG_PATH"
fi
state_dir="$(mktemp -d)"
trap 'rm -rf "$state_dir"' EXIT

# Job order: seed-major, so a partly finished sweep already has every dataset × agent for the first seeds.
jobs=()
for seed in "${seeds[@]}"; do
    for dataset in "${datasets[@]}"; do
        for agent in "${agents[@]}"; do jobs+=("$dataset $agent $seed"); done
    done
done
total=${#jobs[@]}

train_command() {  # dataset agent seed slot -> fills the array `cmd`
    local dataset=$1 agent=$2 seed=$3 slot=$4
    cmd=(env)
    if [[ "$slot" == gpu:* ]]; then
        cmd+=("CUDA_VISIBLE_DEVICES=${slot#gpu:}")
    else
        cmd+=(OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
    fi
    cmd+=("$python" "$train_script" --env_name "$dataset" --agent "$agent" --seed "$seed"
        "${optional_flags[@]}" --log_path "$log_path" --resume)
    if [[ "$slot" == gpu:* ]]; then cmd+=(--device cuda); else cmd+=(--device cpu); fi
    cmd+=("${extra_args[@]}")
}

last_line() {  # the last non-blank line of a log; tqdm bars end in \r, not \n
    tr '\r' '\n' <"$1" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-200
}

# Runs in the background; leaves "<outcome> <detail>" in $state_dir/<index> (done, skipped, failed,
# interrupted, dry).
run_job() {
    local index=$1 dataset=$2 agent=$3 seed=$4 slot=$5
    local name="$dataset $agent seed $seed" tag="[$((index + 1))/$total]"
    local log="$log_dir/${dataset//[^A-Za-z0-9._-]/_}__${agent}__seed${seed}.log"
    local cmd run_dir started rc
    train_command "$dataset" "$agent" "$seed" "$slot"
    if ! run_dir="$("${cmd[@]}" --print_run_dir 2>>"$log")" || [[ -z "$run_dir" ]]; then
        echo "$tag FAILED $name: train.py --print_run_dir failed (log: $log)"
        echo "failed $log" >"$state_dir/$index"
        return
    fi
    run_dir="$(tail -n 1 <<<"$run_dir")"
    if [[ -f "$run_dir/results.json" ]]; then
        echo "$tag skip $name: already finished ($run_dir)"
        echo "skipped" >"$state_dir/$index"
        return
    fi
    if [[ -f "$state_dir/interrupted" ]]; then
        return
    fi
    if [[ "$dry_run" == 1 ]]; then
        printf 'dry %q' "${cmd[0]}" >"$state_dir/$index"
        printf ' %q' "${cmd[@]:1}" >>"$state_dir/$index"
        return
    fi
    echo "$tag start $name on ${slot/:/ } (log: $log)"
    {
        printf '=== %s:' "$(date '+%F %T')"
        printf ' %q' "${cmd[@]}"
        echo
    } >>"$log"
    started=$SECONDS
    "${cmd[@]}" >>"$log" 2>&1 </dev/null &
    echo $! >"$state_dir/$index.pid"
    wait $!
    rc=$?
    rm -f "$state_dir/$index.pid"
    if ((rc == 0)); then
        echo "$tag done $name in $(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s"
        echo "done" >"$state_dir/$index"
    elif [[ -f "$state_dir/interrupted" ]]; then
        echo "interrupted" >"$state_dir/$index"
    else
        echo "$tag FAILED $name (exit $rc, log: $log)"
        echo "failed $log" >"$state_dir/$index"
    fi
}

# Ctrl-C / kill: stop the training processes (their checkpoints let a re-run resume), then summarise.
interrupted=0
stop_training() {
    interrupted=1
    touch "$state_dir/interrupted"
    local pid_file
    for pid_file in "$state_dir"/*.pid; do
        [[ -f "$pid_file" ]] && kill -TERM "$(cat "$pid_file")" 2>/dev/null
    done
}
trap stop_training INT TERM

declare -A slot_of_pid=()
free_slots=("${slots[@]}")

reap_finished() {  # block until a job ends, then give back the slots of all ended jobs
    local pid
    wait -n 2>/dev/null
    for pid in "${!slot_of_pid[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            free_slots+=("${slot_of_pid[$pid]}")
            unset "slot_of_pid[$pid]"
        fi
    done
}

echo "sweep: $total run(s) = ${#datasets[@]} dataset(s) × ${#seeds[@]} seed(s) × ${#agents[@]} agent(s) on $where"
for index in "${!jobs[@]}"; do
    ((interrupted)) && break
    while ((${#free_slots[@]} == 0)); do reap_finished; done
    ((interrupted)) && break
    slot="${free_slots[0]}"
    free_slots=("${free_slots[@]:1}")
    read -r dataset agent seed <<<"${jobs[index]}"
    run_job "$index" "$dataset" "$agent" "$seed" "$slot" &
    slot_of_pid[$!]="$slot"
done
while ((${#slot_of_pid[@]})); do reap_finished; done

done_count=0 skipped=0 stopped=0 failed=() commands=()
for index in "${!jobs[@]}"; do
    [[ -f "$state_dir/$index" ]] || continue
    read -r outcome detail <"$state_dir/$index"
    case "$outcome" in
        done) done_count=$((done_count + 1)) ;;
        skipped) skipped=$((skipped + 1)) ;;
        interrupted) stopped=$((stopped + 1)) ;;
        dry) commands+=("$detail") ;;
        failed)
            read -r dataset agent seed <<<"${jobs[index]}"
            failed+=("$dataset $agent seed $seed — log: $detail — $(last_line "$detail")")
            ;;
    esac
done

echo
if [[ "$dry_run" == 1 ]]; then
    printf '%s\n' "${commands[@]}"
    echo "dry run: ${#commands[@]} run(s) would train, $skipped already finished, ${#failed[@]} failed to resolve"
else
    summary="summary: $done_count done, $skipped skipped (already finished), ${#failed[@]} failed"
    if ((interrupted)); then
        summary+=", $stopped interrupted, $((total - done_count - skipped - ${#failed[@]} - stopped)) not started"
    fi
    echo "$summary, of $total"
    if ((done_count == 0 && ${#failed[@]} == 0 && skipped == total)); then
        echo "nothing to train: every run already has results.json"
    fi
fi
if ((${#failed[@]})); then
    echo "failed runs (fix, then re-run this command to retry them):"
    printf '  %s\n' "${failed[@]}"
fi
if ((interrupted)); then
    echo "interrupted: re-run the same command to resume where it stopped"
    exit 130
fi
[[ "$dry_run" == 1 ]] || printf 'report: python -m lom.report %q\n' "$log_path"
((${#failed[@]} == 0)) || exit 1
