#!/usr/bin/env bash
# The weight-rule tuning study (results/weight_rules/README.md): LOM with --weight_rule fixed, rms and ess on the
# nine collected datasets of the tuning set (full-replay, medium-replay, medium-expert of HalfCheetah-v4, Hopper-v4
# and Walker2d-v4), and IQL, TD3BC, BC on the three full-replay files (the medium ones' baselines are those of
# results/held_out: same files, same schedule).
#
# Usage: bash results/weight_rules/run_study.sh [all|runs|files]
#   DATA   where the collections live or are made (default ~/lom_data, shared with results/full_replay, held_out)
#   WORK   where the runs train, checkpoints included (default $DATA/study_weight_rules)
#   LANES  which lanes to run (default "0 1"; "0" runs one lane beside another long job)
# The runs train with the code of commit $FROZEN (checked out once into $WORK/code), so no later commit changes a
# run half way. Two lanes of one run each (2 cores), each working through its half of the task list in order:
# round 0 (every rule, seed 0, every file), the full-replay baselines, then rounds 1 and 2, so that a study cut
# short stays balanced. Re-running resumes: finished runs are skipped, interrupted ones resume from their last
# checkpoint. `runs` skips the collections (another command is making them: a lane passes over a task whose file
# is not written yet and comes back to it);
# `files` only copies each run's small files next to this script and rebuilds report/.
set -euo pipefail
FROZEN=93683ae
step="${1:-all}"
source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" study_weight_rules
export STEPS=30000 GMM_STEPS=10000 EVAL_EVERY=5000 EVAL_EPISODES=10
declare -A sac_steps=([HalfCheetah]=150000 [Hopper]=200000 [Walker2d]=300000)
ENVS=(HalfCheetah Hopper Walker2d)
KINDS=(full-replay medium-replay medium-expert)
RULES=(fixed rms ess)

files() {  # each run's small files next to this script (no checkpoints, no datasets), then the report
    copy_and_report --final_window 5
}
if [ "$step" = files ]; then files; exit; fi
mkdir -p "$work"

# 1. The collections (the commands of results/full_replay; deterministic, resumable).
[ "$step" = runs ] || for env in "${ENVS[@]}"; do
    lower="${env,,}"
    (cd "$repo" && python -m lom.collect --env "$env-v4" --steps "${sac_steps[$env]}" --transitions 200000 \
        --threads 1 --checkpoint_every 10000 --no_progress --out "$data/collect_$lower" >"$data/collect_$lower.log" 2>&1) &
done
checkout_frozen

# 2. The task list: "seed agent rule env kind" per line, in the order the study should finish them.
tasks() {
    local seed env kind rule agent
    for env in "${ENVS[@]}"; do for kind in "${KINDS[@]}"; do for rule in "${RULES[@]}"; do
        echo "0 LOM $rule $env $kind"; done; done; done
    for seed in 0 1 2; do for env in "${ENVS[@]}"; do for agent in IQL TD3BC BC; do
        echo "$seed $agent - $env full-replay"; done; done; done
    for seed in 1 2; do for env in "${ENVS[@]}"; do for kind in "${KINDS[@]}"; do for rule in "${RULES[@]}"; do
        echo "$seed LOM $rule $env $kind"; done; done; done; done
}
lane() {  # lane number (0 or 1): every other task, under its own LOG_PATH (a sweep holds its LOG_PATH for itself)
    local pass=0 waiting=1 seed agent rule env kind lower file
    # Passes over the lane's tasks until none waits on a collection still being written (a pass skips those).
    while [ "$waiting" = 1 ]; do
        if [ $((pass++)) -gt 0 ]; then sleep 300; fi
        waiting=0
        lane_pass "$1"
    done
}
lane_pass() {
    local i=0
    while read -r seed agent rule env kind; do
        if [ $((i++ % 2)) != "$1" ]; then continue; fi
        lower="${env,,}"
        file="$data/collect_$lower/$lower-v4_$kind.hdf5"
        if [ ! -f "$file" ]; then waiting=1; continue; fi
        if [ "$agent" = LOM ]; then
            LOG_PATH="$work/lane$1" SEEDS="$seed" AGENTS=LOM DATASETS="$env-v4" bash "$repo/run_baselines.sh" \
                --dataset_path "$file" --checkpoint_every 5000 --group "rule-$rule" --weight_rule "$rule" || true
        else
            LOG_PATH="$work/lane$1" SEEDS="$seed" AGENTS="$agent" DATASETS="$env-v4" bash "$repo/run_baselines.sh" \
                --dataset_path "$file" --checkpoint_every 5000 || true  # a failed run is retried on re-run
        fi
    done < <(tasks)
}
for n in ${LANES:-0 1}; do lane "$n" >>"$work/lane_$n.log" 2>&1 & done
wait

# 3. The small files and the report.
files
