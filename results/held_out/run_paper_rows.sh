#!/usr/bin/env bash
# LOM [paper] on the six held-out files with the paper's own rows (results/held_out/README.md, "LOM [paper] with
# the authors' rows"): `--preset paper` reads each file's recorded environment and kind and takes that row of the
# paper's table (β 0.1 on medium-expert, 5 on medium-replay), 3 seeds, the schedule of run_study.sh. The first
# LOM [paper] column (seed 0, commit e694e81) fell back to PAPER_DEFAULT on every file; these runs replace it.
#
# Usage: bash results/held_out/run_paper_rows.sh [runs|files]
#   DATA   where the collections live (default ~/lom_data; run_study.sh makes them)
#   WORK   where the runs train (default $DATA/study_held_out_paper_rows)
#   LANES  which kinds to run, one lane (one core) each (default "medium-replay medium-expert")
# The runs train with the code of commit $FROZEN (checked out once into $WORK/code); each lane goes seed by seed,
# env by env, waiting for a file another command is still writing. Re-running resumes; `files` only copies each
# run's small files next to this script (group paper-rows) and rebuilds report/.
set -euo pipefail
FROZEN=85a0e7d
step="${1:-runs}"
source "$(dirname "${BASH_SOURCE[0]}")/../study_paths.sh" study_held_out_paper_rows
export STEPS=30000 GMM_STEPS=10000 EVAL_EVERY=5000 EVAL_EPISODES=10

files() {  # each run's small files next to this script (no checkpoints, no datasets), then the report
    copy_and_report
}
if [ "$step" = files ]; then files; exit; fi
mkdir -p "$work"
checkout_frozen

lane() {  # kind; LOG_PATH $WORK/<kind> mirrors run_study.sh, so the runs land beside the first study's
    local seed env lower file
    for seed in 0 1 2; do for env in HalfCheetah Hopper Walker2d; do
        lower="${env,,}"
        file="$data/collect_$lower/$lower-v4_$1.hdf5"
        until [ -f "$file" ]; do sleep 60; done
        LOG_PATH="$work/$1" SEEDS="$seed" AGENTS=LOM-paper DATASETS="$env-v4" bash "$repo/run_baselines.sh" \
            --dataset_path "$file" --checkpoint_every 5000 --group paper-rows || true  # retried on re-run
    done; done
}
for kind in ${LANES:-medium-replay medium-expert}; do lane "$kind" >>"$work/lane_$kind.log" 2>&1 & done
wait
files
