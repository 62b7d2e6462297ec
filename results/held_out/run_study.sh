#!/usr/bin/env bash
# The held-out study (results/held_out/README.md): LOM's default (frozen at commit $FROZEN), LOM [paper], IQL,
# TD3BC and BC on six datasets that played no part in choosing the default: medium-replay and medium-expert of the
# HalfCheetah-v4, Hopper-v4 and Walker2d-v4 collections of results/full_replay (same `lom.collect` commands).
#
# Usage: bash results/held_out/run_study.sh
#   DATA   where the collections live or are made (default ~/lom_data, shared with results/full_replay)
#   WORK   where the runs train, checkpoints included (default $DATA/study_held_out)
#   AGENTS default "LOM IQL TD3BC BC": the agents of the three seed rounds; LOM-paper seed 0 trains after them
# The runs train with the code of commit $FROZEN (train.py and lom/ checked out once into $WORK/code, driven by this
# checkout's sweep), so that no later commit can change a run half way. Two lanes of one run each (2 cores):
# medium-replay and medium-expert; in each, seed 0 of every agent on every env first, then seed 1, then seed 2, so
# that a study cut short stays balanced. Re-running resumes: finished runs are skipped, interrupted ones resume.
# `bash run_study.sh runs` skips the collections (they exist, or another command is making them: the runs wait for
# each file); `bash run_study.sh files` only copies each run's small files next to this script and rebuilds report/.
set -euo pipefail
FROZEN=e694e81
step="${1:-all}"
source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" study_held_out
export STEPS=30000 GMM_STEPS=10000 EVAL_EVERY=5000 EVAL_EPISODES=10  # LOG_PATH: one per lane, $WORK/<kind>
read -r -a round_agents <<<"${AGENTS:-LOM IQL TD3BC BC}"
declare -A sac_steps=([HalfCheetah]=150000 [Hopper]=200000 [Walker2d]=300000)

files() {  # each run's small files next to this script (no checkpoints, no datasets), then the report
    copy_and_report
}
if [ "$step" = files ]; then files; exit; fi
mkdir -p "$work"

# 1. The collections (as results/full_replay/run_study.sh makes them); a finished one only writes missing kinds.
[ "$step" = runs ] || for env in HalfCheetah Hopper Walker2d; do
    lower="${env,,}"
    (cd "$repo" && python -m lom.collect --env "$env-v4" --steps "${sac_steps[$env]}" --transitions 200000 \
        --threads 1 --checkpoint_every 10000 --no_progress --out "$data/collect_$lower" >"$data/collect_$lower.log" 2>&1) &
done
wait
checkout_frozen

# 2. The runs: lane A trains medium-replay, lane B medium-expert, env by env, round by round (each lane its own
#    LOG_PATH: a sweep holds its LOG_PATH for itself).
lane() {  # kind
    local seed env lower
    for round in 0 1 2 paper; do
        for env in HalfCheetah Hopper Walker2d; do
            lower="${env,,}"
            if [ "$round" = paper ]; then seed=0 agents=LOM-paper; else seed=$round agents="${round_agents[*]}"; fi
            file="$data/collect_$lower/$lower-v4_$1.hdf5"
            until [ -f "$file" ]; do sleep 60; done  # a collection still being written by another command
            LOG_PATH="$work/$1" SEEDS="$seed" AGENTS="$agents" DATASETS="$env-v4" bash "$repo/run_baselines.sh" \
                --dataset_path "$file" --checkpoint_every 5000 || true  # a failed run is retried on re-run
        done
    done
}
lane medium-replay >"$work/lane_medium-replay.log" 2>&1 &
lane medium-expert >"$work/lane_medium-expert.log" 2>&1 &
wait

# 3. The small files and the report.
files
