#!/usr/bin/env bash
# The multimodal study (results/multimodal/README.md): LOM, LOM [paper], IQL, TD3BC, BC and MDN, 3 seeds, on the three
# Fetch tasks (built in, generated on first use) and the HalfCheetah forwards/backwards mixture (lom.collect twice,
# then lom.collect.multimodal).
#
# Usage: bash results/multimodal/run_study.sh [all|runs|files]
#   DATA   where the collections live or are made (default ~/lom_data, shared with the other studies)
#   WORK   where the runs train, checkpoints included (default $DATA/study_multimodal)
#   LANES  which lanes to run (default "fetch locomotion")
# The runs train with the code of commit $FROZEN (checked out once into $WORK/code). Two lanes of one run each:
# the Fetch tasks, and the locomotion task (which waits for its dataset); in each, seed 0 of every agent on every
# task first, then seed 1, then seed 2, so that a study cut short stays balanced. Re-running resumes: finished runs
# are skipped, interrupted ones resume. `runs` skips the collections; `files` only copies each run's small files
# next to this script and rebuilds report/.
set -euo pipefail
FROZEN=998290f
step="${1:-all}"
source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" study_multimodal
AGENTS_ALL="LOM LOM-paper IQL TD3BC BC MDN"
FETCH=(fetch-reach-multimodal-v0 fetch-push-multimodal-v0 fetch-pickandplace-multimodal-v0)
mix="$data/halfcheetah_multimodal/halfcheetah-v4_multimodal.hdf5"

files() {  # each run's small files next to this script (no checkpoints, no datasets), the report, the mode plots
    copy_and_report --final_window 5
    # The Fetch agents' strategies from their final checkpoints, loaded by the code that trained them.
    if [ -d "$work/fetch" ]; then
        (cd "$code" && python -m lom.fetch.plot --agents "$work/fetch" --out "$here/fetch_strategies.png") |
            grep -v '^wrote ' >"$here/fetch_strategies.txt"
    fi
}
if [ "$step" = files ]; then files; exit; fi
mkdir -p "$work"
checkout_frozen

# 1. The locomotion task's data (docs/collect.md, "A multimodal locomotion dataset"): forwards (the collection of
#    results/full_replay), backwards, then the mixture; deterministic, and a finished step only prints its summary.
if [ "$step" != runs ]; then (
    cd "$code"
    common=(--steps 150000 --transitions 200000 --threads 1 --checkpoint_every 10000 --no_progress)
    python -m lom.collect --env HalfCheetah-v4 "${common[@]}" --out "$data/collect_halfcheetah"
    python -m lom.collect --env HalfCheetah-v4 "${common[@]}" --env_kwargs forward_reward_weight=-1 \
        --out "$data/collect_halfcheetah_backward"
    python -m lom.collect.multimodal --env HalfCheetah-v4 --no_progress \
        --parts "$data/collect_halfcheetah" "$data/collect_halfcheetah_backward" --names forward backward \
        --shares 0.25 0.75 --episodes 200 --seed 0 --out "$data/halfcheetah_multimodal"
) >"$work/data.log" 2>&1 & fi

# 2. The runs (each lane its own LOG_PATH: a sweep holds its LOG_PATH for itself).
fetch_lane() {
    for seed in 0 1 2; do for task in "${FETCH[@]}"; do
        LOG_PATH="$work/fetch" SEEDS="$seed" AGENTS="$AGENTS_ALL" DATASETS="$task" bash "$repo/run_baselines.sh" \
            --checkpoint_every 1000 || true  # a failed run is retried on re-run
    done; done
}
locomotion_lane() {
    until [ -f "$mix" ]; do sleep 300; done  # the mixture still being made
    for seed in 0 1 2; do
        LOG_PATH="$work/locomotion" SEEDS="$seed" AGENTS="$AGENTS_ALL" DATASETS="HalfCheetah-v4" \
            STEPS=30000 GMM_STEPS=10000 EVAL_EVERY=5000 EVAL_EPISODES=10 bash "$repo/run_baselines.sh" \
            --dataset_path "$mix" --checkpoint_every 5000 || true
    done
}
for lane in ${LANES:-fetch locomotion}; do "${lane}_lane" >>"$work/lane_$lane.log" 2>&1 & done
wait

# 3. The small files and the report.
files
