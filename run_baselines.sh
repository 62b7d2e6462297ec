#!/usr/bin/env bash
# Replicate the paper's tables: train every dataset × seed × agent with train.py, spread over the GPUs (or the CPU
# cores) of this machine, or submitted to a Slurm cluster as one array job; then print the command that builds the
# report.
#
# Re-running is safe and cheap: runs with a results.json are skipped and interrupted ones resume from their last
# checkpoint (--resume is always passed), so after a crash the same command finishes the sweep. The planned runs
# are listed in $LOG_PATH/sweep.tsv, which `python -m lom.report $LOG_PATH --status` reads.
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
#   DRY_RUN=1      print the commands that would run (LAUNCHER=slurm: the sbatch command) instead of running them
#   LAUNCHER       local (default) or slurm: submit one array job, one task per unfinished run; a task stopped by
#                  SIGTERM/SIGUSR1 saves its checkpoint and requeues itself to continue with --resume
#   Slurm only (unset: the cluster's defaults):
#   PARTITION, ACCOUNT    sbatch --partition, --account
#   TIME_LIMIT     sbatch --time per task (e.g. 24:00:00); STOP_WARNING seconds before it (default 180) Slurm sends
#                  SIGUSR1, and the task saves and requeues itself
#   CPUS_PER_TASK  default 1 (also the task's OMP_NUM_THREADS); GPUS_PER_TASK: default 0, else --gres=gpu:N and
#                  --device cuda; MEM_PER_TASK: sbatch --mem (e.g. 16G)
#   MAX_RUNNING    at most this many tasks of the array run at once (--array=...%N)
#   JOB_NAME       default lom-sweep; EXTRA_SBATCH: more sbatch options, split on spaces (e.g. "--qos=low")
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
launcher="${LAUNCHER:-local}"
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
[[ "$launcher" =~ ^(local|slurm)$ ]] || die "LAUNCHER=$launcher — use local or slurm"
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

if [[ "$launcher" == slurm ]]; then
    cpus_per_task="${CPUS_PER_TASK:-1}"
    gpus_per_task="${GPUS_PER_TASK:-0}"
    stop_warning="${STOP_WARNING:-180}"
    max_running="${MAX_RUNNING:-}"
    require_count CPUS_PER_TASK "$cpus_per_task"
    require_count STOP_WARNING "$stop_warning"
    [[ -z "$max_running" ]] || require_count MAX_RUNNING "$max_running"
    [[ "$gpus_per_task" =~ ^[0-9]+$ ]] || die "GPUS_PER_TASK=$gpus_per_task is not a whole number — set it to e.g. 1"
    slurm_device=cpu
    ((gpus_per_task == 0)) || slurm_device=cuda
    [[ "$device" != cuda || "$slurm_device" == cuda ]] || die "DEVICE=cuda needs GPUS_PER_TASK=1 (or more) with LAUNCHER=slurm"
    [[ "$device" != cpu ]] || slurm_device=cpu
    for tool in sbatch squeue; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found — run LAUNCHER=slurm on a Slurm login node, or use LAUNCHER=local"
    done
    where="Slurm, one array task per run"
else
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

train_command() {  # dataset agent seed slot (gpu:<id>, cpu or slurm) -> fills the array `cmd`
    local dataset=$1 agent=$2 seed=$3 slot=$4 run_device=cpu
    cmd=(env)
    case "$slot" in
        gpu:*) cmd+=("CUDA_VISIBLE_DEVICES=${slot#gpu:}") run_device=cuda ;;
        cpu) cmd+=(OMP_NUM_THREADS=1 MKL_NUM_THREADS=1) ;;
        slurm) cmd+=("OMP_NUM_THREADS=$cpus_per_task" "MKL_NUM_THREADS=$cpus_per_task") run_device=$slurm_device ;;
    esac
    cmd+=("$python" "$train_script" --env_name "$dataset" --agent "$agent" --seed "$seed"
        "${optional_flags[@]}" --log_path "$log_path" --resume --device "$run_device" "${extra_args[@]}")
}

log_of() {  # job index -> its log file
    local dataset agent seed
    read -r dataset agent seed <<<"${jobs[$1]}"
    echo "$log_dir/${dataset//[^A-Za-z0-9._-]/_}__${agent}__seed${seed}.log"
}

run_key() {  # run folder -> the same folder relative to LOG_PATH: <project>/<group>/<dataset>/<agent>/seed<S>
    local IFS=/ parts
    read -r -a parts <<<"$1"
    echo "${parts[*]: -5}"
}

last_line() {  # the last non-blank line of a log that this script did not write; tqdm bars end in \r, not \n
    tr '\r' '\n' <"$1" 2>/dev/null | grep -v -e '^[[:space:]]*$' -e '^=== ' | tail -n 1 | cut -c1-200
}

exit_record() {  # log rc: the line lom.report --status reads to tell a failed run from an interrupted one
    echo "=== $(date '+%F %T'): exit $2" >>"$1"
}

echo "sweep: $total run(s) = ${#datasets[@]} dataset(s) × ${#seeds[@]} seed(s) × ${#agents[@]} agent(s) on $where"
# Every run's folder, from train.py itself (--print_run_dir, several at a time); a run whose flags train.py refuses
# is failed here, with train.py's message in its log.
run_dirs=()
resolvers="$(nproc 2>/dev/null || echo 1)"
for index in "${!jobs[@]}"; do
    read -r dataset agent seed <<<"${jobs[index]}"
    train_command "$dataset" "$agent" "$seed" cpu
    "${cmd[@]}" --print_run_dir >"$state_dir/$index.dir" 2>"$state_dir/$index.err" </dev/null &
    (((index + 1) % resolvers)) || wait
done
wait
for index in "${!jobs[@]}"; do
    run_dirs[index]="$(tail -n 1 "$state_dir/$index.dir")"
    if [[ -z "${run_dirs[index]}" ]]; then
        read -r dataset agent seed <<<"${jobs[index]}"
        log="$(log_of "$index")"
        cat "$state_dir/$index.err" >>"$log"
        echo "[$((index + 1))/$total] FAILED $dataset $agent seed $seed: train.py --print_run_dir failed (log: $log)"
        echo "failed $log" >"$state_dir/$index"
    fi
done

# $LOG_PATH/sweep.tsv: every run a sweep into LOG_PATH has planned (folder and log, relative to LOG_PATH), so that
# `lom.report --status` can list the runs not started yet.
write_manifest() {
    local manifest="$log_path/sweep.tsv" index key run
    local -A listed=()
    if [[ -f "$manifest" ]]; then
        while IFS=$'\t' read -r run _; do listed[$run]=1; done <"$manifest"
    else
        printf 'run\tlog\n' >"$manifest"
    fi
    for index in "${!jobs[@]}"; do
        [[ -n "${run_dirs[index]}" ]] || continue
        key="$(run_key "${run_dirs[index]}")"
        [[ -z "${listed[$key]:-}" ]] || continue
        listed[$key]=1
        printf '%s\tlogs/%s\n' "$key" "$(basename "$(log_of "$index")")" >>"$manifest"
    done
}
[[ "$dry_run" == 1 ]] || write_manifest

# The body of every Slurm array task, after it has set `run` (its folder), `log` and `cmd` for its run.
read -r -d '' SLURM_TASK_BODY <<'TASK'
mkdir -p "$(dirname "$log")"
exec >>"$log" 2>&1 </dev/null
printf '=== %s: Slurm task %s_%s (job %s, restart %s) on %s:' "$(date '+%F %T')" "$SLURM_ARRAY_JOB_ID" \
    "$SLURM_ARRAY_TASK_ID" "$SLURM_JOB_ID" "${SLURM_RESTART_COUNT:-0}" "$(hostname)"
printf ' %q' "${cmd[@]}"
echo
# Slurm signals this shell (SIGUSR1 ahead of the time limit, SIGTERM when it ends or preempts the job): pass it on
# to train.py, which saves its checkpoint at the next step and exits 75 (EXIT_STOPPED in lom/errors.py).
child= signalled=
trap 'signalled=1; [[ -z "$child" ]] || kill -USR1 "$child" 2>/dev/null' USR1
trap 'signalled=1; [[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null' TERM
"${cmd[@]}" &
child=$!
while kill -0 "$child" 2>/dev/null; do wait "$child"; done  # a trapped signal cuts `wait` short
wait "$child"
rc=$?
echo "=== $(date '+%F %T'): exit $rc"
if ((rc != 0)) && [[ -f "$run/results.json" ]]; then
    echo "the signal came as train.py was exiting, after it had written results.json: the run is finished"
    rc=0
elif ((rc == 75 || (rc > 128 && signalled))); then
    # 75: train.py saved its checkpoint; above 128: the signal came before train.py could catch it (while it was
    # loading data), so it continues from its last checkpoint. Requeue only a job that Slurm still runs: when Slurm
    # itself ends it (scancel, its own requeue, preemption), Slurm's decision stands.
    state="$(squeue -h -j "$SLURM_JOB_ID" -o %T 2>/dev/null | head -n 1)"
    if [[ "$state" == RUNNING ]] && scontrol requeue "$SLURM_JOB_ID"; then
        echo "requeued: this task will start again and continue from the checkpoint"
    else
        echo "not requeued by the task: Slurm is ending the job itself (state ${state:-unknown}); it comes back only" \
            "if Slurm requeues it (preemption, scontrol requeue), else re-run the sweep to resume it"
    fi
fi
exit "$rc"
TASK

submit_to_slurm() {
    local slurm_dir="$log_dir/slurm" live id run index i key dataset agent seed job_id
    local -A live_task=() queued=()
    mkdir -p "$slurm_dir" || die "cannot create $slurm_dir"
    # Array tasks of earlier submissions that Slurm still holds (pending, running, requeued) are not submitted again.
    live="$(squeue -h -r -u "$(id -un)" -o %i 2>&1)" || die "squeue failed: $live — is the cluster reachable from here?"
    for id in $live; do live_task[$id]=1; done
    if [[ -f "$slurm_dir/tasks.tsv" ]]; then
        while IFS=$'\t' read -r id run; do
            [[ -z "${live_task[$id]:-}" ]] || queued[$run]=$id
        done <"$slurm_dir/tasks.tsv"
    fi
    local submit=() finished=0 in_queue=0 running=0
    for index in "${!jobs[@]}"; do
        [[ -n "${run_dirs[index]}" ]] || continue
        key="$(run_key "${run_dirs[index]}")"
        if [[ -f "${run_dirs[index]}/results.json" ]]; then
            finished=$((finished + 1))
        elif [[ -n "${queued[$key]:-}" ]]; then
            in_queue=$((in_queue + 1))
        elif [[ -f "${run_dirs[index]}.lock" ]] && command -v flock >/dev/null 2>&1 &&
            ! flock -n -s "${run_dirs[index]}.lock" true; then
            running=$((running + 1))  # a train.py outside this queue (another machine, or by hand) holds the folder
        else
            submit+=("$index")
        fi
    done
    local failed_count=0
    for index in "${!jobs[@]}"; do [[ -n "${run_dirs[index]}" ]] || failed_count=$((failed_count + 1)); done
    local summary="$finished already finished, $in_queue already queued, $running running elsewhere"
    ((failed_count == 0)) || summary+=", $failed_count failed to resolve (see above)"
    if ((${#submit[@]} == 0)); then
        echo "nothing to submit: $summary, of $total"
        printf 'status: python -m lom.report %q --status\n' "$log_path"
        ((failed_count == 0)) || exit 1
        return
    fi

    local script="$slurm_dir/sweep-$(date '+%Y%m%d-%H%M%S')-$$.sbatch"
    {
        echo '#!/usr/bin/env bash'
        echo "# Written by run_baselines.sh on $(date '+%F %T'): Slurm array task i trains the i-th run below."
        echo 'case "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array}" in'
        for i in "${!submit[@]}"; do
            read -r dataset agent seed <<<"${jobs[${submit[i]}]}"
            train_command "$dataset" "$agent" "$seed" slurm
            printf '%s) run=%q log=%q cmd=(' "$i" "${run_dirs[${submit[i]}]}" "$(log_of "${submit[i]}")"
            printf ' %q' "${cmd[@]}"
            printf ' ) ;;\n'
        done
        echo 'esac'
        echo "$SLURM_TASK_BODY"
    } >"$script" || die "cannot write $script"

    local array="0-$((${#submit[@]} - 1))${max_running:+%$max_running}" extra_sbatch=()
    read -r -a extra_sbatch <<<"${EXTRA_SBATCH:-}"
    local sbatch_cmd=(sbatch --parsable --job-name="${JOB_NAME:-lom-sweep}" --array="$array" --ntasks=1
        --cpus-per-task="$cpus_per_task" --requeue --signal="B:USR1@$stop_warning" --open-mode=append
        --output="$slurm_dir/%A_%a.out")
    [[ -z "${PARTITION:-}" ]] || sbatch_cmd+=(--partition="$PARTITION")
    [[ -z "${ACCOUNT:-}" ]] || sbatch_cmd+=(--account="$ACCOUNT")
    [[ -z "${TIME_LIMIT:-}" ]] || sbatch_cmd+=(--time="$TIME_LIMIT")
    [[ -z "${MEM_PER_TASK:-}" ]] || sbatch_cmd+=(--mem="$MEM_PER_TASK")
    ((gpus_per_task == 0)) || sbatch_cmd+=(--gres="gpu:$gpus_per_task")
    sbatch_cmd+=("${extra_sbatch[@]}" "$script")

    if [[ "$dry_run" == 1 ]]; then
        printf '%q' "${sbatch_cmd[0]}"
        printf ' %q' "${sbatch_cmd[@]:1}"
        echo
        echo "dry run: ${#submit[@]} run(s) would be submitted ($script), $summary"
        return
    fi
    job_id="$("${sbatch_cmd[@]}" 2>"$state_dir/sbatch.err")" || die "sbatch failed: $(tr '\n' ' ' <"$state_dir/sbatch.err")"
    job_id="${job_id%%;*}"  # --parsable prints <id> or <id>;<cluster>
    for i in "${!submit[@]}"; do
        printf '%s_%s\t%s\n' "$job_id" "$i" "$(run_key "${run_dirs[${submit[i]}]}")" >>"$slurm_dir/tasks.tsv"
    done
    echo "submitted ${#submit[@]} run(s) as Slurm array job $job_id (tasks $array; $script); $summary, of $total"
    echo "watch:  squeue -r -j $job_id   (each run logs to $log_dir/)"
    printf 'status: python -m lom.report %q --status\n' "$log_path"
    echo "then re-run this command: it submits only runs that are neither finished nor queued"
    printf 'report: python -m lom.report %q\n' "$log_path"
    ((failed_count == 0)) || exit 1
}

if [[ "$launcher" == slurm ]]; then
    submit_to_slurm
    exit 0
fi

# Runs in the background; leaves "<outcome> <detail>" in $state_dir/<index> (done, skipped, failed,
# interrupted, dry).
run_job() {
    local index=$1 dataset=$2 agent=$3 seed=$4 slot=$5
    local name="$dataset $agent seed $seed" tag="[$((index + 1))/$total]"
    local log run_dir="${run_dirs[index]}" cmd started rc
    log="$(log_of "$index")"
    train_command "$dataset" "$agent" "$seed" "$slot"
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
    exit_record "$log" "$rc"
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

for index in "${!jobs[@]}"; do
    [[ -n "${run_dirs[index]}" ]] || continue  # failed above
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
